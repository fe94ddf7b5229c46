package keyvault

import "sync"

type counters struct {
	mu sync.Mutex
	m  map[string]int64
}

func newCounters() *counters { return &counters{m: map[string]int64{}} }

func (c *counters) inc(op string) {
	c.mu.Lock()
	c.m[op]++
	c.mu.Unlock()
}

func (c *counters) snapshot() map[string]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int64, len(c.m))
	for k, v := range c.m {
		out[k] = v
	}
	return out
}

func (c *counters) reset() {
	c.mu.Lock()
	c.m = map[string]int64{}
	c.mu.Unlock()
}
