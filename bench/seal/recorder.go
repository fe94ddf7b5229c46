package seal

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"time"
)

// recorder is the slog.Handler given to the Env's parts (kek client, store,
// emulator). The parts have no hooks for "the probe saw disabled" or "this
// tenant's seal is committed", but they log both at the moment they happen,
// from the worker's own goroutines; the recorder keeps those instants and
// forwards every record to the scenario's logger.
//
//   - kek logs "key vault call failed" with op=unwrapKey outcome=disabled
//     when Key Vault refuses an unwrap because the key is disabled. Readers
//     never unwrap (their DEKs are cached, and a sealed tenant fails before
//     any Key Vault call), so after the disable the first such record is the
//     worker's probe proving the in-use version no longer unwraps: the
//     moment the Reconciler learns the key is disabled.
//   - the store logs "tenant sealed" with the tenant once the seal is
//     committed, i.e. once Get for that tenant starts failing.
type recorder struct {
	st    *recorded
	next  slog.Handler // nil: nothing to forward to
	attrs []slog.Attr  // from WithAttrs, searched like the record's own
}

// recorded is shared by a recorder and the handlers derived from it.
type recorded struct {
	origin time.Time
	mu     sync.Mutex
	// refused is when Key Vault first refused an unwrap as disabled,
	// since origin; 0 until then.
	refused time.Duration
	sealed  map[string]time.Duration // tenant → seal committed, since origin
}

func newRecorder(origin time.Time, next *slog.Logger) *recorder {
	r := &recorder{st: &recorded{origin: origin, sealed: map[string]time.Duration{}}}
	if next != nil {
		r.next = next.Handler()
	}
	return r
}

// Enabled is true for every level: kek's refusal is a Debug record.
func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(ctx context.Context, rec slog.Record) error {
	r.observe(rec)
	if r.next != nil && r.next.Enabled(ctx, rec.Level) {
		return r.next.Handle(ctx, rec)
	}
	return nil
}

func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	c := *r
	c.attrs = append(append([]slog.Attr(nil), r.attrs...), as...)
	if r.next != nil {
		c.next = r.next.WithAttrs(as)
	}
	return &c
}

func (r *recorder) WithGroup(name string) slog.Handler {
	c := *r
	if r.next != nil {
		c.next = r.next.WithGroup(name)
	}
	return &c
}

// observe notes the two instants the scenario measures from. The record's
// own time is taken when the part logged, with the monotonic clock.
func (r *recorder) observe(rec slog.Record) {
	switch rec.Message {
	case "key vault call failed":
		if r.attr(rec, "op") != "unwrapKey" || r.attr(rec, "outcome") != "disabled" {
			return
		}
		r.st.mu.Lock()
		if r.st.refused == 0 {
			r.st.refused = rec.Time.Sub(r.st.origin)
		}
		r.st.mu.Unlock()
	case "tenant sealed":
		tenant := r.attr(rec, "tenant")
		if tenant == "" {
			return
		}
		at := rec.Time.Sub(r.st.origin)
		r.st.mu.Lock()
		if prev, ok := r.st.sealed[tenant]; !ok || at < prev {
			r.st.sealed[tenant] = at
		}
		r.st.mu.Unlock()
	}
}

func (r *recorder) attr(rec slog.Record, key string) string {
	v := ""
	find := func(a slog.Attr) bool {
		if a.Key == key {
			v = a.Value.String()
			return false
		}
		return true
	}
	for _, a := range r.attrs {
		if !find(a) {
			return v
		}
	}
	rec.Attrs(find)
	return v
}

// probeSaw is when the worker's probe learned the key is disabled.
func (r *recorder) probeSaw() (time.Duration, bool) {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	return r.st.refused, r.st.refused != 0
}

// sealedAt returns a copy of the seal commit times.
func (r *recorder) sealedAt() map[string]time.Duration {
	r.st.mu.Lock()
	defer r.st.mu.Unlock()
	return maps.Clone(r.st.sealed)
}
