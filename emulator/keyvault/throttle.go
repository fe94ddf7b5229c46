package keyvault

import (
	"sync"
	"time"
)

// throttle is a fixed-window request budget for the whole vault, like Key
// Vault's per-vault limit per 10 seconds: windows follow one another from
// the first request after the limit was set. It runs on the wall clock, not
// Config.Now, so a fake clock in a test does not change it.
type throttle struct {
	mu         sync.Mutex
	limit      int // < 0: off
	window     time.Duration
	retryAfter bool
	start      time.Time
	used       int
}

func newThrottle(limit int, window time.Duration, retryAfter bool) *throttle {
	t := &throttle{}
	t.set(limit, window, retryAfter)
	return t
}

func (t *throttle) set(limit int, window time.Duration, retryAfter bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.limit, t.window, t.retryAfter = limit, window, retryAfter
	t.start, t.used = time.Time{}, 0
}

// take spends one request. When the budget is gone it reports false and,
// if Retry-After is on, the whole seconds until the window ends (>= 1).
func (t *throttle) take(now time.Time) (ok bool, retryAfter int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.limit < 0 {
		return true, 0
	}
	switch since := now.Sub(t.start); {
	case t.start.IsZero():
		t.start, t.used = now, 0
	case since >= t.window:
		// Fixed windows: the next starts where the last ended, not with the
		// next request, so a client that returns after a rounded-up
		// Retry-After finds its window already running, as on a server
		// that counts per fixed 10 s.
		t.start, t.used = t.start.Add(since-since%t.window), 0
	}
	if t.used < t.limit {
		t.used++
		return true, 0
	}
	if !t.retryAfter {
		return false, 0
	}
	left := t.start.Add(t.window).Sub(now)
	return false, max(1, int((left+time.Second-1)/time.Second))
}
