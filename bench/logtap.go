package bench

import (
	"context"
	"log/slog"
	"time"
)

// Logged is one record of a message a LogTap watches.
type Logged struct {
	Msg string
	At  time.Time // when the part logged it (monotonic clock)
	// Attr returns the record's attribute key (those given by With too)
	// as a string, "" if absent.
	Attr func(key string) string
}

// LogTap is a logger for the parts whose logs a scenario times: the parts
// have no hooks for the instants measured (a seal committed, a rewrap
// done), but log them the moment they happen, from their own goroutines.
// Every record of a watched message at level min or above goes to on, from
// the logging goroutine; every record goes on to next (nil: nowhere).
func LogTap(next *slog.Logger, min slog.Level, on func(Logged), msgs ...string) *slog.Logger {
	t := &tap{watch: map[string]bool{}, on: on, min: min}
	for _, m := range msgs {
		t.watch[m] = true
	}
	if next != nil {
		t.next = next.Handler()
	}
	return slog.New(t)
}

type tap struct {
	watch map[string]bool
	on    func(Logged)
	min   slog.Level
	next  slog.Handler
	attrs []slog.Attr // from WithAttrs, searched like the record's own
}

func (t *tap) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= t.min || t.next != nil && t.next.Enabled(ctx, l)
}

func (t *tap) Handle(ctx context.Context, rec slog.Record) error {
	if rec.Level >= t.min && t.watch[rec.Message] {
		t.on(Logged{Msg: rec.Message, At: rec.Time, Attr: func(key string) string { return t.attr(rec, key) }})
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
