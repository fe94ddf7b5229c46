package kek

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

// fakeClock is a settable clock for limiter math.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func testLimiter(c *fakeClock, cfg LimiterConfig) *limiter {
	cfg.setDefaults()
	l := newLimiter(cfg, c.now, func(float64) {})
	l.rand = func() float64 { return 0.5 } // no jitter
	return l
}

func TestLimiterHalvesOnceAndPauses(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := testLimiter(c, LimiterConfig{InitialRate: 100})
	e1, _ := l.take()
	c.add(time.Second)
	_, e2 := l.take()
	if e1 != 0 || e2 != 0 {
		t.Fatalf("take should succeed at once")
	}
	l.sem <- struct{}{}
	l.sem <- struct{}{}
	l.done(e2, false, resultThrottled, 0)
	l.done(e2, false, resultThrottled, 0) // in flight together: no second halving
	if got := l.Rate(); got != 50 {
		t.Fatalf("rate after 429 = %v, want 50", got)
	}
	wait, _ := l.take()
	if wait != time.Second {
		t.Fatalf("pause after first 429 = %v, want 1s", wait)
	}
}

func TestLimiterPauseSequence(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := testLimiter(c, LimiterConfig{InitialRate: 100})
	var got []time.Duration
	for range 6 {
		c.add(time.Minute) // past any pause
		_, epoch := l.take()
		l.sem <- struct{}{}
		l.done(epoch, false, resultThrottled, 0)
		got = append(got, l.pausedUntil.Sub(c.now()))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 16}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("pauses = %v, want 1,2,4,8,16,16 s", got)
		}
	}
	if l.Rate() < DefaultMinRate {
		t.Fatalf("rate %v below MinRate", l.Rate())
	}
	// A success resets the sequence.
	c.add(time.Minute)
	_, epoch := l.take()
	l.sem <- struct{}{}
	l.done(epoch, false, resultOK, 0)
	c.add(time.Minute)
	_, epoch = l.take()
	l.sem <- struct{}{}
	l.done(epoch, false, resultThrottled, 0)
	if p := l.pausedUntil.Sub(c.now()); p != time.Second {
		t.Fatalf("pause after success = %v, want 1s", p)
	}
}

func TestLimiterHonoursRetryAfterAndMaxPause(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := testLimiter(c, LimiterConfig{MaxPause: 10 * time.Second})
	_, e := l.take()
	l.sem <- struct{}{}
	l.done(e, false, resultThrottled, 3*time.Second)
	if p := l.pausedUntil.Sub(c.now()); p != 3*time.Second {
		t.Fatalf("pause = %v, want Retry-After 3s", p)
	}
	c.add(time.Minute)
	_, e = l.take()
	l.sem <- struct{}{}
	l.done(e, false, resultThrottled, time.Hour)
	if p := l.pausedUntil.Sub(c.now()); p != 10*time.Second {
		t.Fatalf("pause = %v, want MaxPause 10s", p)
	}
}

// Until the first 429 every success adds one call per second — the rate
// doubles once as many calls as it allows have succeeded, however long they
// took; after the 429 it halves and grows by Increase per second.
func TestLimiterSlowStart(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := testLimiter(c, LimiterConfig{InitialRate: 100, MaxRate: 10000, Increase: 0.05})
	for range 300 {
		c.add(time.Millisecond)
		l.sem <- struct{}{}
		l.done(0, false, resultOK, 0)
	}
	if r := l.Rate(); r != 400 {
		t.Fatalf("rate after 300 successes in slow start = %v, want 400", r)
	}
	_, e := l.take()
	l.sem <- struct{}{}
	l.done(e, false, resultThrottled, time.Second)
	c.add(2 * time.Second)
	l.sem <- struct{}{}
	l.done(0, false, resultOK, 0)
	if want := 200 * 1.05; math.Abs(l.Rate()-want) > 1e-9 {
		t.Fatalf("rate a second after the 429 = %v, want %v (halved, then +5 %%)", l.Rate(), want)
	}
}

func TestLimiterFloorAndGrowth(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := testLimiter(c, LimiterConfig{InitialRate: 4, MinRate: 2, MaxRate: 5, Increase: 0.5})
	for range 5 {
		c.add(time.Minute)
		_, e := l.take()
		l.sem <- struct{}{}
		l.done(e, false, resultThrottled, time.Second)
	}
	if l.Rate() != 2 {
		t.Fatalf("rate = %v, want MinRate 2", l.Rate())
	}
	for range 10 {
		c.add(time.Second)
		l.sem <- struct{}{}
		l.done(0, false, resultOK, 0)
	}
	if l.Rate() != 5 {
		t.Fatalf("rate = %v, want MaxRate 5", l.Rate())
	}
	// 5xx neither grows nor shrinks.
	l.sem <- struct{}{}
	l.done(l.epoch, false, resultFailed, 0)
	if l.Rate() != 5 {
		t.Fatalf("rate after 5xx = %v", l.Rate())
	}
}

func TestLimiterPacesTokens(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := testLimiter(c, LimiterConfig{InitialRate: 10})
	if w, _ := l.take(); w != 0 {
		t.Fatalf("first take waits %v", w)
	}
	if w, _ := l.take(); w != 100*time.Millisecond {
		t.Fatalf("second take waits %v, want 100ms at 10/s", w)
	}
	c.add(time.Hour) // idle: the bucket holds at most one token at 10/s
	l.take()
	if w, _ := l.take(); w == 0 {
		t.Fatalf("idle time built a burst")
	}
}

func TestLimiterConcurrencyAndCancel(t *testing.T) {
	l := newLimiter(LimiterConfig{InitialRate: 1000, MinRate: 1, MaxRate: 1000, MaxConcurrency: 1, MaxPause: time.Second}, time.Now, func(float64) {})
	e, err := l.acquire(t.Context(), false)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.acquire(ctx, false); err == nil {
		t.Fatal("second acquire passed the concurrency bound")
	}
	l.done(e, false, resultOK, 0)
	if _, err := l.acquire(t.Context(), false); err != nil {
		t.Fatalf("slot not released: %v", err)
	}
}

func TestBackoff(t *testing.T) {
	base, max := 100*time.Millisecond, time.Second
	want := []time.Duration{100, 200, 400, 800, 1000, 1000}
	for n, w := range want {
		if got := backoff(n, base, max, 0.5); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %v, want %vms", n, got, w)
		}
	}
	if lo, hi := backoff(0, base, max, 0), backoff(0, base, max, 0.999999); lo != 80*time.Millisecond || hi < 119*time.Millisecond || hi > 120*time.Millisecond {
		t.Errorf("jitter range [%v, %v], want ±20%%", lo, hi)
	}
	if got := throttlePause(0, 0); got != 800*time.Millisecond {
		t.Errorf("throttlePause jitter low = %v", got)
	}
}

// Against a fixed-window quota that says when it returns (Retry-After), the
// rate after a 429 is what the vault granted over the window and the pause,
// not half: 1,000 calls in 6.67 s at 150/s, then a 3.33 s pause, is 100/s.
// A 429 without Retry-After still halves.
func TestLimiterAdoptsTheGrantedRateOnRetryAfter(t *testing.T) {
	c := &fakeClock{t: time.Unix(1000, 0)}
	l := testLimiter(c, LimiterConfig{InitialRate: 150, MinRate: 1, MaxRate: 1000, Increase: 1e-9})
	l.slowStart = false
	l.grantedSince = c.now()
	step := time.Second / 150
	for range 1000 {
		c.add(step)
		l.sem <- struct{}{}
		l.done(0, false, resultOK, 0)
	}
	_, e := l.take()
	l.sem <- struct{}{}
	l.done(e, false, resultThrottled, 10*time.Second-1000*step)
	if r := l.Rate(); math.Abs(r-100) > 0.5 {
		t.Fatalf("rate after a window's quota and its Retry-After = %v, want about 100 (granted), not 75 (halved)", r)
	}
	// The next 429, without Retry-After, halves.
	c.t = l.pausedUntil.Add(time.Second)
	_, e = l.take()
	l.sem <- struct{}{}
	l.done(e, false, resultThrottled, 0)
	if r := l.Rate(); math.Abs(r-50) > 0.5 {
		t.Fatalf("rate after a 429 without Retry-After = %v, want half", r)
	}
}

// A Managed HSM allows about 1,100 RSA unwraps per second, a vault 400 calls
// per second averaged over 10 s: an HSM's limiter starts, and its probe
// budget is measured, from the HSM's limit; a vault's stay as they were.
func TestManagedHSMStartsFromItsLimit(t *testing.T) {
	c, err := New(Config{
		Credential:  StaticToken("t"),
		Policy:      VaultPolicy{AllowLoopback: true},
		ManagedHSMs: []string{"127.0.0.1:8443"},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		vault        string
		hsm          bool
		start, limit float64
	}{
		{"https://v.vault.azure.net", false, DefaultInitialRate, DefaultVaultLimit},
		{"https://h.managedhsm.azure.net", true, DefaultInitialRate * DefaultHSMLimit / DefaultVaultLimit, DefaultHSMLimit},
		{"https://127.0.0.1:8443", true, DefaultInitialRate * DefaultHSMLimit / DefaultVaultLimit, DefaultHSMLimit},
		{"https://127.0.0.1:9443", false, DefaultInitialRate, DefaultVaultLimit},
	}
	for _, tt := range tests {
		v, err := c.vault(tt.vault)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ManagedHSM(tt.vault); got != tt.hsm {
			t.Errorf("ManagedHSM(%s) = %v, want %v", tt.vault, got, tt.hsm)
		}
		if got := v.lim.Rate(); got != tt.start {
			t.Errorf("%s starts at %v/s, want %v", tt.vault, got, tt.start)
		}
		if got := c.VaultLimit(tt.vault); got != tt.limit {
			t.Errorf("VaultLimit(%s) = %v, want %v", tt.vault, got, tt.limit)
		}
	}
	// The starting rate stays within the configured bounds.
	l := LimiterConfig{InitialRate: 300, MaxRate: 500}
	l.setDefaults()
	if got := l.forHSM(); got.InitialRate != 500 || got.VaultLimit != DefaultHSMLimit {
		t.Errorf("forHSM = %+v, want InitialRate capped at MaxRate 500", got)
	}
	if err := (Config{Credential: StaticToken("t"), ManagedHSMs: []string{"http://x"}}).Validate(); err == nil || !strings.Contains(err.Error(), "ManagedHSMs") {
		t.Errorf("bad ManagedHSMs entry: %v", err)
	}
}
