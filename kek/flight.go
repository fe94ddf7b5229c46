package kek

import (
	"context"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd"
)

// flight is one probe in progress that concurrent wraps wait for, so a
// stale cache under load costs one GET, not one per caller.
type flight struct {
	done chan struct{}
	rec  *probeRecord
	err  error
}

type flights struct {
	mu sync.Mutex
	m  map[string]*flight
}

// probeShared probes id once for all callers that ask at the same time. A
// caller whose leader gave up (its context ended) probes by itself.
func (c *Client) probeShared(ctx context.Context, id cmkd.KeyID) (*probeRecord, error) {
	key := id.String()
	c.flights.mu.Lock()
	// The cache is filled before a flight lands, so this closes the gap
	// between a caller's cache miss and its arrival here.
	if rec := c.cache.get(id, c.cfg.ProbeFreshness, time.Now()); rec != nil {
		c.flights.mu.Unlock()
		return rec, nil
	}
	if f := c.flights.m[key]; f != nil {
		c.flights.mu.Unlock()
		select {
		case <-f.done:
			if f.err == nil {
				return f.rec, nil
			}
			return c.probe(ctx, id)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &flight{done: make(chan struct{})}
	if c.flights.m == nil {
		c.flights.m = map[string]*flight{}
	}
	c.flights.m[key] = f
	c.flights.mu.Unlock()

	f.rec, f.err = c.probe(ctx, id)
	c.flights.mu.Lock()
	delete(c.flights.m, key)
	c.flights.mu.Unlock()
	close(f.done)
	return f.rec, f.err
}
