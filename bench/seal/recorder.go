package seal

import (
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd/bench"
)

// recorder watches the logs of the Env's parts (kek client, store,
// emulator). The parts have no hooks for "the probe saw disabled" or "this
// tenant's seal is committed", but they log both at the moment they happen,
// from the worker's own goroutines; the recorder keeps those instants.
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
	st *recorded
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

func newRecorder(origin time.Time) *recorder {
	return &recorder{st: &recorded{origin: origin, sealed: map[string]time.Duration{}}}
}

// logger forwards every record to next and observes the two messages, at
// every level: kek's refusal is a Debug record.
func (r *recorder) logger(next *slog.Logger) *slog.Logger {
	return bench.LogTap(next, slog.LevelDebug, r.observe, "key vault call failed", "tenant sealed")
}

// observe notes the two instants the scenario measures from. The record's
// own time is taken when the part logged, with the monotonic clock.
func (r *recorder) observe(rec bench.Logged) {
	switch rec.Msg {
	case "key vault call failed":
		if rec.Attr("op") != "unwrapKey" || rec.Attr("outcome") != "disabled" {
			return
		}
		r.st.mu.Lock()
		if r.st.refused == 0 {
			r.st.refused = rec.At.Sub(r.st.origin)
		}
		r.st.mu.Unlock()
	case "tenant sealed":
		tenant := rec.Attr("tenant")
		if tenant == "" {
			return
		}
		at := rec.At.Sub(r.st.origin)
		r.st.mu.Lock()
		if prev, ok := r.st.sealed[tenant]; !ok || at < prev {
			r.st.sealed[tenant] = at
		}
		r.st.mu.Unlock()
	}
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
