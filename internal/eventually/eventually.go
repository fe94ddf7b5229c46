// Package eventually is the one way cmkd's tests wait for something that
// happens on another goroutine or in another process: poll a condition
// until it holds or a deadline passes. Tests never sleep for a fixed time
// where a condition can be waited for.
package eventually

import (
	"testing"
	"time"
)

// poll is how often a condition is checked: short against every wait in
// the suite, long against the cost of the checks.
const poll = 10 * time.Millisecond

// True fails tb unless cond returns true within d; what says what was
// awaited.
func True(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	NoError(tb, d, what, func() (bool, error) { return cond(), nil })
}

// NoError is True for a condition that can fail: an error ends the wait and
// fails tb at once.
func NoError(tb testing.TB, d time.Duration, what string, cond func() (bool, error)) {
	tb.Helper()
	deadline := time.Now().Add(d)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		ok, err := cond()
		switch {
		case err != nil:
			tb.Fatalf("waiting for %s: %v", what, err)
		case ok:
			return
		case time.Now().After(deadline):
			tb.Fatalf("timed out after %s waiting for %s", d, what)
		}
		select {
		case <-t.C:
		case <-tb.Context().Done():
			tb.Fatalf("test ended while waiting for %s", what)
		}
	}
}
