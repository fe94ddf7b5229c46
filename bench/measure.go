package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Percentile is the p-th percentile of ds by nearest rank (p 0 is the
// least); 0 for no values.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// PerSecond is n over d, 0 when d is not positive.
func PerSecond(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

// ErrTimeout is a wait or a phase that did not end in its time.
var ErrTimeout = errors.New("timed out")

// WaitFor polls cond every poll until it holds, fails, or timeout or ctx
// ends; what names the wait in its errors.
func WaitFor(ctx context.Context, timeout, poll time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		ok, err := cond()
		switch {
		case err != nil:
			return fmt.Errorf("waiting for %s: %w", what, err)
		case ok:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("waiting for %s: %w after %s", what, ErrTimeout, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Timed runs op for i in [from, from+n) and returns how long that took;
// the first error stops it.
func Timed(ctx context.Context, from, n int, op func(context.Context, int) error) (time.Duration, error) {
	start := time.Now()
	for i := from; i < from+n; i++ {
		if err := op(ctx, i); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// Median is the median of v (the mean of the middle two for an even
// count); v is not changed.
func Median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
