package eventgrid

import (
	"encoding/json"
	"slices"
	"time"
)

// entry is one event in one subscription's queue.
type entry struct {
	event         json.RawMessage
	deliveryCount int
	availableAt   time.Time // after a delayed release
	token         string    // set while locked
	lockedUntil   time.Time
}

// subscription holds its own copy of every event published to its topic.
// All methods run under Server.mu.
type subscription struct {
	partition string
	lockFor   time.Duration
	maxDeliv  int
	entries   []*entry // publish order
	locked    map[string]*entry
	dead      []DeadLetter
	changed   chan struct{} // closed and replaced when events may have become available
}

func newSubscription(lockFor time.Duration, maxDeliv int) *subscription {
	return &subscription{
		partition: newPartition(),
		lockFor:   lockFor,
		maxDeliv:  maxDeliv,
		locked:    map[string]*entry{},
		changed:   make(chan struct{}),
	}
}

func (s *subscription) notify() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *subscription) add(ev json.RawMessage) {
	s.entries = append(s.entries, &entry{event: ev})
	s.notify()
}

// sweep unlocks events whose lock expired: the receiver lost them.
func (s *subscription) sweep(now time.Time) {
	for tok, e := range s.locked {
		if !now.Before(e.lockedUntil) {
			delete(s.locked, tok)
			s.unlock(e, now, 0)
		}
	}
}

// unlock makes e available again after delay, or dead-letters it when it has
// had all its deliveries.
func (s *subscription) unlock(e *entry, now time.Time, delay time.Duration) {
	e.token = ""
	if e.deliveryCount >= s.maxDeliv {
		s.deadLetter(e, ReasonMaxDeliveryCount, now)
		return
	}
	e.availableAt = now.Add(delay)
	s.notify()
}

func (s *subscription) deadLetter(e *entry, reason string, now time.Time) {
	s.remove(e)
	s.dead = append(s.dead, DeadLetter{
		Event:         cloudEventOf(e.event),
		Raw:           e.event,
		Reason:        reason,
		DeliveryCount: e.deliveryCount,
		At:            now,
	})
}

func (s *subscription) remove(e *entry) {
	if i := slices.Index(s.entries, e); i >= 0 {
		s.entries = slices.Delete(s.entries, i, i+1)
	}
}

// take locks up to n available events, oldest first.
func (s *subscription) take(now time.Time, n int) []receiveDetail {
	var out []receiveDetail
	for _, e := range s.entries {
		if len(out) == n {
			break
		}
		if e.token != "" || now.Before(e.availableAt) {
			continue
		}
		e.deliveryCount++
		e.token = newLockToken(s.partition)
		e.lockedUntil = now.Add(s.lockFor)
		s.locked[e.token] = e
		out = append(out, receiveDetail{
			BrokerProperties: brokerProperties{LockToken: e.token, DeliveryCount: e.deliveryCount},
			Event:            e.event,
		})
	}
	return out
}

// nextChange is when a lock expires or a delayed event becomes available,
// whichever is first; zero if neither is pending.
func (s *subscription) nextChange(now time.Time) time.Time {
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	for _, e := range s.entries {
		if e.token != "" {
			consider(e.lockedUntil)
		} else {
			consider(e.availableAt)
		}
	}
	return next
}

// settle op names as they appear in the path.
const (
	opAcknowledge = "acknowledge"
	opRelease     = "release"
	opReject      = "reject"
	opRenewLock   = "renewLock"
)

// settle applies op to each token independently, as the service does.
func (s *subscription) settle(op string, tokens []string, delay time.Duration, now time.Time) settleResult {
	s.sweep(now)
	res := settleResult{FailedLockTokens: []failedLockToken{}, SucceededLockTokens: []string{}}
	for _, tok := range tokens {
		if !validLockToken(tok) {
			res.FailedLockTokens = append(res.FailedLockTokens, failedLockToken{tok, failBadToken})
			continue
		}
		e, ok := s.locked[tok]
		if !ok {
			res.FailedLockTokens = append(res.FailedLockTokens, failedLockToken{tok, failTokenLost})
			continue
		}
		s.apply(op, tok, e, delay, now)
		res.SucceededLockTokens = append(res.SucceededLockTokens, tok)
	}
	return res
}

func (s *subscription) apply(op, tok string, e *entry, delay time.Duration, now time.Time) {
	if op == opRenewLock {
		e.lockedUntil = now.Add(s.lockFor)
		return
	}
	delete(s.locked, tok)
	switch op {
	case opAcknowledge:
		e.token = ""
		s.remove(e)
	case opReject:
		e.token = ""
		s.deadLetter(e, ReasonRejected, now)
	case opRelease:
		s.unlock(e, now, delay)
	}
}
