package chaos

import (
	"sync"
	"time"
)

// outage is an interval in which a key could not be used, as the harness
// made it so: the truth seals are judged against.
type outage struct {
	Key    string // versionless key URL
	Reason string // the seal reason cmkd should give (cmkd.Reason*)
	From   time.Time
	To     time.Time // zero while it lasts
}

func (o outage) until(now time.Time) time.Time {
	if o.To.IsZero() {
		return now
	}
	return o.To
}

// truth records the outages the harness caused, per key.
type truth struct {
	mu      sync.Mutex
	outages []outage
	open    map[[2]string]int // (key, reason) → index of the open outage
}

func newTruth() *truth { return &truth{open: map[[2]string]int{}} }

// down starts an outage of keys for reason, at now.
func (t *truth) down(reason string, keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for _, k := range keys {
		if _, ok := t.open[[2]string{k, reason}]; ok {
			continue
		}
		t.open[[2]string{k, reason}] = len(t.outages)
		t.outages = append(t.outages, outage{Key: k, Reason: reason, From: now})
	}
}

// up ends the outages of keys for reason.
func (t *truth) up(reason string, keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	for _, k := range keys {
		if i, ok := t.open[[2]string{k, reason}]; ok {
			t.outages[i].To = now
			delete(t.open, [2]string{k, reason})
		}
	}
}

func (t *truth) all() []outage {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]outage(nil), t.outages...)
}
