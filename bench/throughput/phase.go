package throughput

import (
	"context"
	"errors"
	"fmt"
	"time"

	cevents "github.com/cmkd-io/cmkd/events"
)

// measured is one drain of events that were all queued before the clock
// started, until the last was acknowledged.
type measured struct {
	events  int
	elapsed time.Duration
	// What cmkd did meanwhile (zero for a raw baseline).
	probes     int64  // Key Vault GETs of a key: one per reconcile (kek/probe.go)
	kvCalls    int64  // every Key Vault operation
	reconciles counts // by outcome (handlers.Outcome, "error", "busy")
	handled    counts // by outcome ("ack", "retry", "dead_letter")
	unacked    int    // left pending or dead-lettered
}

func (m measured) rate() float64 { return float64(m.events) / m.elapsed.Seconds() }

func (m measured) perEvent(n int64) float64 { return float64(n) / float64(m.events) }

// source is a cmkd event source running for one phase.
type source interface {
	Run(ctx context.Context, h cevents.Handler) error
}

// drainTimeout bounds one phase; a full one takes seconds.
const drainTimeout = 2 * time.Minute

// pipeline runs src, which hands events to the worker, until drained says
// every one of n queued events was settled, and counts what the worker and
// Key Vault did meanwhile. The clock includes src's start: connecting and
// (for JetStream) creating its consumer are part of what a user waits for,
// and take milliseconds.
func (r *rig) pipeline(ctx context.Context, n int, src source, h cevents.Handler, drained func(context.Context) (bool, error)) (measured, error) {
	m := measured{events: n}
	r.env.KV.ResetCalls()
	rec0, err := r.reconciles()
	if err != nil {
		return m, err
	}
	h0, err := r.handled()
	if err != nil {
		return m, err
	}
	sctx, stop := context.WithCancel(ctx)
	exited := make(chan error, 1)
	start := time.Now()
	go func() { exited <- src.Run(sctx, h) }()
	err = waitFor(ctx, drainTimeout, "every event to be acknowledged", func() (bool, error) {
		select {
		case err := <-exited:
			exited <- err
			return false, errSourceStopped(err)
		default:
		}
		return drained(ctx)
	})
	m.elapsed = time.Since(start)
	stop()
	if rerr := <-exited; err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return m, err
	}
	// An event that found its key checked less than EventMinInterval ago
	// was acknowledged at once, its check deferred to the key's next slot:
	// count that check too. The clock stops at the last acknowledgement,
	// which is what the event source waits for.
	err = waitFor(ctx, drainTimeout, "the checks the events asked for", func() (bool, error) {
		n, err := gauge(r.reg, "cmkd_checks_pending")
		return n == 0, err
	})
	if err != nil {
		return m, err
	}
	return m, r.count(&m, rec0, h0)
}

// count fills in m what the worker and Key Vault did since rec0 and h0.
func (r *rig) count(m *measured, rec0, h0 counts) error {
	m.probes = r.env.KV.Calls()["getKey"]
	m.kvCalls = r.env.Calls()
	rec, err := r.reconciles()
	if err != nil {
		return err
	}
	h, err := r.handled()
	if err != nil {
		return err
	}
	m.reconciles, m.handled = rec.minus(rec0), h.minus(h0)
	return nil
}

// errSourceStopped says why a source ended before its phase did.
func errSourceStopped(err error) error {
	if err == nil {
		return errors.New("source stopped before every event was acknowledged")
	}
	return fmt.Errorf("source stopped: %w", err)
}
