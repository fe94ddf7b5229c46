package kek

import (
	"context"
	"sync"
	"time"
)

// limiter is one vault's adaptive rate limit (AIMD token bucket) and
// concurrency bound. Key Vault throttles per vault, so all calls to one
// vault share it. Urgent calls (probes, seals, single wraps) go before bulk
// ones (a rewrap's): a bulk call takes a token only while no urgent call
// waits for one, and bulk calls hold at most three quarters of the
// concurrency slots, so a rewrap at full speed never delays a seal.
type limiter struct {
	cfg     LimiterConfig
	now     func() time.Time
	rand    func() float64
	sem     chan struct{}
	bulkSem chan struct{}

	mu          sync.Mutex
	rate        float64 // tokens per second
	tokens      float64
	refilled    time.Time
	grown       time.Time
	pausedUntil time.Time
	strikes     int // 429 pauses since the last success
	// granted counts the successes since grantedSince (the end of the last
	// pause): what the vault allowed in its last cycle of quota and pause.
	granted      int
	grantedSince time.Time
	epoch        uint64 // bumped on every decrease; see done
	urgentWait   int    // urgent callers waiting for a token
	// slowStart grows the rate by one call per second per success until
	// the first 429, as TCP's slow start does: a rewrap should find the
	// vault's limit in seconds, not creep up to it by Increase per second.
	slowStart bool
	onRate    func(float64)
}

func newLimiter(cfg LimiterConfig, now func() time.Time, onRate func(float64)) *limiter {
	t := now()
	l := &limiter{
		cfg: cfg, now: now, rand: uniform,
		sem:     make(chan struct{}, cfg.MaxConcurrency),
		bulkSem: make(chan struct{}, max(1, cfg.MaxConcurrency*3/4)),
		rate:    cfg.InitialRate, tokens: 1, refilled: t, grown: t, grantedSince: t,
		slowStart: true, onRate: onRate,
	}
	l.onRate(l.rate)
	return l
}

// acquire waits for a concurrency slot and a token. The returned epoch goes
// back to done, with the same bulk flag. On error nothing is held.
func (l *limiter) acquire(ctx context.Context, bulk bool) (uint64, error) {
	if bulk {
		select {
		case l.bulkSem <- struct{}{}:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		l.releaseBulk(bulk)
		return 0, ctx.Err()
	}
	if !bulk {
		l.mu.Lock()
		l.urgentWait++
		l.mu.Unlock()
		defer func() {
			l.mu.Lock()
			l.urgentWait--
			l.mu.Unlock()
		}()
	}
	for {
		wait, epoch := l.takeFor(bulk)
		if wait == 0 {
			return epoch, nil
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			<-l.sem
			l.releaseBulk(bulk)
			return 0, ctx.Err()
		}
	}
}

func (l *limiter) releaseBulk(bulk bool) {
	if bulk {
		<-l.bulkSem
	}
}

// take takes a token for an urgent call, or says how long to wait.
func (l *limiter) take() (time.Duration, uint64) { return l.takeFor(false) }

// takeFor takes a token, or says how long to wait for one. A bulk call
// waits while urgent calls wait: they take the next tokens.
func (l *limiter) takeFor(bulk bool) (time.Duration, uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Before(l.pausedUntil) {
		return l.pausedUntil.Sub(now), 0
	}
	l.refill(now)
	perToken := time.Duration(float64(time.Second) / l.rate)
	if bulk && l.urgentWait > 0 {
		return max(perToken, time.Millisecond), 0
	}
	if l.tokens >= 1 {
		l.tokens--
		return 0, l.epoch
	}
	wait := time.Duration((1 - l.tokens) * float64(perToken))
	return max(wait, time.Millisecond), 0
}

// refill adds tokens for the time passed. The bucket holds at most a tenth
// of a second's worth, so an idle vault is not hit by a burst.
func (l *limiter) refill(now time.Time) {
	if dt := now.Sub(l.refilled).Seconds(); dt > 0 {
		l.tokens = min(l.burst(), l.tokens+dt*l.rate)
	}
	l.refilled = now
}

func (l *limiter) burst() float64 { return max(1, l.rate/10) }

// result is what a call told the limiter.
type result int

const (
	resultOK        result = iota // the vault answered (2xx, or a definitive 4xx)
	resultThrottled               // 429
	resultFailed                  // 5xx or transport error: says nothing about the rate
)

// done releases the slot and adapts the rate. A 429 halves the rate and
// pauses the vault only when the call started after the last decrease
// (same epoch): the calls that were in flight together with it met the same
// congestion and must not halve the rate again.
func (l *limiter) done(epoch uint64, bulk bool, r result, retryAfter time.Duration) {
	<-l.sem
	l.releaseBulk(bulk)
	l.mu.Lock()
	defer l.mu.Unlock()
	switch r {
	case resultOK:
		l.strikes = 0
		l.granted++
		l.grow(l.now())
	case resultThrottled:
		if epoch == l.epoch {
			l.decrease(retryAfter)
		}
	}
}

// grow adapts the rate to a success. In slow start each success adds one
// call per second, as each ACK grows TCP's window: while calls flow at the
// rate, it doubles per second, and it grows no faster than calls succeed
// (a cold start's slow first calls do not inflate it). After the first 429 it
// adds Increase·rate per second of success; a long idle gap counts as one
// second, so rate only grows while it is being used.
func (l *limiter) grow(now time.Time) {
	dt := min(now.Sub(l.grown).Seconds(), 1)
	l.grown = now
	if dt <= 0 || l.rate >= l.cfg.MaxRate {
		return
	}
	r := l.rate * (1 + l.cfg.Increase*dt)
	if l.slowStart {
		r = l.rate + 1
	}
	l.setRate(min(l.cfg.MaxRate, r))
}

// decrease slows down after a 429 and pauses the vault. Without
// Retry-After the rate halves. With it, the vault has said when its quota
// returns, so the rate becomes what the vault granted over the cycle that
// ends with this pause — its successes since the last pause ended, over
// that time and this pause — if that is more than half: against Key
// Vault's fixed windows, halving left half of each next window unused.
func (l *limiter) decrease(retryAfter time.Duration) {
	now := l.now()
	l.epoch++
	l.slowStart = false
	pause := retryAfter
	rate := l.rate / 2
	if pause > 0 {
		if g := l.grantedRate(now, min(pause, l.cfg.MaxPause)); g > rate {
			rate = min(g, l.rate)
		}
	} else {
		pause = throttlePause(l.strikes, l.rand())
		l.strikes++
	}
	l.setRate(max(l.cfg.MinRate, rate))
	pause = min(pause, l.cfg.MaxPause)
	l.pausedUntil = now.Add(pause)
	l.granted, l.grantedSince = 0, l.pausedUntil
	l.tokens = 0
	l.refilled = l.pausedUntil
	l.grown = l.pausedUntil
}

// grantedRate is the successes since the last pause over the time since
// then plus pause; 0 when too little was seen to tell (under a second or
// ten calls).
func (l *limiter) grantedRate(now time.Time, pause time.Duration) float64 {
	active := now.Sub(l.grantedSince)
	if active < time.Second || l.granted < 10 {
		return 0
	}
	return float64(l.granted) / (active + pause).Seconds()
}

func (l *limiter) setRate(r float64) {
	l.rate = r
	l.onRate(r)
}

// Rate is the current rate in calls per second.
func (l *limiter) Rate() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rate
}
