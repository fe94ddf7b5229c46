package eventgrid

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"
)

// Acknowledgements are batched: one AcknowledgeEvents call per request to
// Event Grid took longer than the handler for a coalesced event, and held
// the event's in-flight slot meanwhile.
const (
	// maxAckTokens is the most lock tokens Event Grid takes in one call.
	maxAckTokens = 100
	// ackDelay is how long an acknowledgement waits for others to join it;
	// far below any lock duration, so the lock cannot expire meanwhile.
	ackDelay = 20 * time.Millisecond
)

// acker sends acknowledgements in batches: when maxAckTokens are waiting,
// or ackDelay after the first of a batch, and at shutdown (flush). An
// acknowledgement lost to a crash only means a redelivery, which handlers
// tolerate.
type acker struct {
	s *Source

	mu     sync.Mutex
	tokens []string
	timer  *time.Timer
	sends  sync.WaitGroup
}

func newAcker(s *Source) *acker { return &acker{s: s} }

// add queues one token; the caller's slot is free when add returns.
func (a *acker) add(token string) {
	a.mu.Lock()
	a.tokens = append(a.tokens, token)
	var batch []string
	if len(a.tokens) >= maxAckTokens {
		batch = a.take()
	} else if a.timer == nil {
		a.timer = time.AfterFunc(ackDelay, func() { a.send(a.takeLocked()) })
	}
	a.sends.Add(1) // released by the send of the batch holding token
	a.mu.Unlock()
	if batch != nil {
		a.send(batch)
	}
}

// take empties the queue; a.mu is held.
func (a *acker) take() []string {
	b := a.tokens
	a.tokens = nil
	if a.timer != nil {
		a.timer.Stop()
		a.timer = nil
	}
	return b
}

func (a *acker) takeLocked() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.take()
}

// flush sends what is queued and waits for every send in progress.
func (a *acker) flush() {
	a.send(a.takeLocked())
	a.sends.Wait()
}

// send acknowledges tokens in one call. Failures are logged and counted;
// those events come back after their locks expire.
func (a *acker) send(tokens []string) {
	if len(tokens) == 0 {
		return
	}
	defer a.sends.Add(-len(tokens))
	ctx, cancel := context.WithTimeout(context.Background(), settleTimeout)
	defer cancel()
	r, err := a.s.client.AcknowledgeEvents(ctx, tokens, nil)
	if err = errors.Join(err, failure(r.FailedLockTokens)); err != nil {
		a.s.metrics.settleFails.WithLabelValues(opAck).Inc()
		a.s.log.Warn("eventgrid acknowledge failed; the events will be delivered again",
			slog.Int("events", len(tokens)), slog.Any("err", err))
	}
}
