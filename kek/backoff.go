package kek

import (
	"math/rand/v2"
	"time"
)

// jitter spreads d by ±20 % so that many callers backing off together do not
// come back together. u is uniform in [0, 1).
func jitter(d time.Duration, u float64) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*u))
}

// backoff is the wait before retry attempt n (0-based): base·2ⁿ, capped,
// then jittered.
func backoff(n int, base, max time.Duration, u float64) time.Duration {
	d := base
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	return jitter(min(d, max), u)
}

// throttlePause is the pause after the n-th consecutive 429 (0-based) that
// came without Retry-After: 1, 2, 4, 8, 16 s, then 16 s again.
func throttlePause(n int, u float64) time.Duration {
	return jitter(time.Second<<min(n, 4), u)
}

func uniform() float64 { return rand.Float64() } // #nosec G404 -- spreads load over time; nothing depends on it being unpredictable
