package keyvault

import (
	"testing"
	"time"
)

// The windows are fixed: one starts where the last ended, whenever the next
// request comes. A client that comes back a little after the Retry-After it
// was given (which is rounded up to whole seconds) finds a window already
// running, not one that starts with it — so it loses no more than a server
// with fixed windows makes it lose.
func TestThrottleWindowsAreFixed(t *testing.T) {
	th := newThrottle(2, 10*time.Second, true)
	t0 := time.Unix(1000, 0)
	for i := range 2 {
		if ok, _ := th.take(t0.Add(time.Duration(i) * time.Second)); !ok {
			t.Fatalf("request %d within the budget refused", i)
		}
	}
	ok, ra := th.take(t0.Add(2500 * time.Millisecond))
	if ok || ra != 8 {
		t.Fatalf("over budget at 2.5 s: ok %v, Retry-After %d; want refused, 8 (7.5 s rounded up)", ok, ra)
	}
	// Back at 12.5 s, late: the second window began at 10 s.
	back := t0.Add(12500 * time.Millisecond)
	for i := range 2 {
		if ok, _ := th.take(back); !ok {
			t.Fatalf("request %d of the second window refused", i)
		}
	}
	if ok, ra := th.take(back); ok || ra != 8 {
		t.Fatalf("over the second window's budget at 12.5 s: ok %v, Retry-After %d; want refused, 8 (to 20 s, rounded up)", ok, ra)
	}
	// Long idle: the window that holds now, still on the 10 s grid.
	if ok, _ := th.take(t0.Add(65 * time.Second)); !ok {
		t.Fatal("a request after a minute of quiet refused")
	}
	th.take(t0.Add(65 * time.Second))
	if _, ra := th.take(t0.Add(65 * time.Second)); ra != 5 {
		t.Fatalf("Retry-After at 65 s = %d, want 5 (the window 60-70 s)", ra)
	}
}
