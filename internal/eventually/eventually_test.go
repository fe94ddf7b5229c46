package eventually_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/internal/eventually"
)

func TestTrueWaitsForTheCondition(t *testing.T) {
	var n atomic.Int32
	go func() {
		for range 3 {
			n.Add(1)
		}
	}()
	eventually.True(t, 5*time.Second, "three increments", func() bool { return n.Load() == 3 })
}

// A condition that never holds fails the test once its time is up.
func TestTrueFailsAfterTheDeadline(t *testing.T) {
	ft := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer func() { _ = recover() }() // Fatalf of the fake panics to stop the goroutine
		eventually.True(ft, 30*time.Millisecond, "never", func() bool { return false })
	}()
	<-done
	if !ft.failed {
		t.Fatal("a condition that never held did not fail the test")
	}
}

type fakeTB struct {
	testing.TB
	failed bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(string, ...any) {
	f.failed = true
	panic("fatal")
}
