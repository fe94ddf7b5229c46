package schedule

import (
	"context"
	"log/slog"
	"time"
)

// Log messages the scenarios time. The parts have no hooks for these
// instants, but log them the moment they happen, from the worker's own
// goroutines.
const (
	// msgRewrapCompleted is the Reconciler's, once a rewrap's last swap and
	// the tenants' new version are committed; attrs key and rewrapped.
	msgRewrapCompleted = "rewrap completed"
	// msgRewrapFailed is the Reconciler's, when a rewrap stops short.
	msgRewrapFailed = "rewrap failed"
	// msgTenantSealed is the store's, once a tenant's seal is committed;
	// attr tenant.
	msgTenantSealed = "tenant sealed"
)

// logged is one record of a watched message.
type logged struct {
	msg string
	at  time.Time // when the part logged it (monotonic clock)
	// attr returns the record's attribute key (those given by With too)
	// as a string, "" if absent.
	attr func(key string) string
}

// tap is the slog.Handler given to the parts whose logs the scenarios time:
// it hands every record of a watched message to on, from the logging
// goroutine, and forwards every record to the scenario's logger.
type tap struct {
	watch map[string]bool
	on    func(logged)
	next  slog.Handler // nil: nothing to forward to
	attrs []slog.Attr  // from WithAttrs, searched like the record's own
}

func newTap(next *slog.Logger, on func(logged), msgs ...string) *slog.Logger {
	t := &tap{watch: map[string]bool{}, on: on}
	for _, m := range msgs {
		t.watch[m] = true
	}
	if next != nil {
		t.next = next.Handler()
	}
	return slog.New(t)
}

// Enabled lets Info and above through, the levels of the watched
// messages, and whatever the scenario's logger wants.
func (t *tap) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelInfo || t.next != nil && t.next.Enabled(ctx, l)
}

func (t *tap) Handle(ctx context.Context, rec slog.Record) error {
	if t.watch[rec.Message] {
		t.on(logged{msg: rec.Message, at: rec.Time, attr: func(key string) string { return t.attr(rec, key) }})
	}
	if t.next != nil && t.next.Enabled(ctx, rec.Level) {
		return t.next.Handle(ctx, rec)
	}
	return nil
}

func (t *tap) WithAttrs(as []slog.Attr) slog.Handler {
	c := *t
	c.attrs = append(append([]slog.Attr(nil), t.attrs...), as...)
	if t.next != nil {
		c.next = t.next.WithAttrs(as)
	}
	return &c
}

func (t *tap) WithGroup(name string) slog.Handler {
	c := *t
	if t.next != nil {
		c.next = t.next.WithGroup(name)
	}
	return &c
}

func (t *tap) attr(rec slog.Record, key string) string {
	v := ""
	find := func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	}
	for _, a := range t.attrs {
		if !find(a) {
			return v
		}
	}
	rec.Attrs(find)
	return v
}
