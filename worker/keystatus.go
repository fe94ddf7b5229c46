package worker

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/store"
)

// keyCollector exposes every key this process checks, read from the
// scheduler at scrape time: a key another replica works on appears in that
// replica's metrics, and a key that is gone disappears with it.
type keyCollector struct{ s *scheduler }

var (
	descProbed = prometheus.NewDesc("cmkd_key_last_probe_timestamp_seconds",
		"When Key Vault last answered a probe of the key (Unix time; 0: never).", []string{"vault", "key"}, nil)
	descAge = prometheus.NewDesc("cmkd_key_probe_age_seconds",
		"Seconds since Key Vault last answered a probe of the key, or since the key was first checked.", []string{"vault", "key"}, nil)
	descOutcome = prometheus.NewDesc("cmkd_key_check_outcome",
		"What the key's last check found (1 for the outcome label).", []string{"vault", "key", "outcome"}, nil)
	descInterval = prometheus.NewDesc("cmkd_key_probe_interval_seconds",
		"The key's effective probe interval.", []string{"vault", "key"}, nil)
	descRewrap = prometheus.NewDesc("cmkd_key_rewrap_deks",
		"DEKs of the key's running or last rewrap, done and in total.", []string{"vault", "key", "state"}, nil)
	descRewrapRunning = prometheus.NewDesc("cmkd_key_rewrap_running",
		"1 while a rewrap of the key runs in this process.", []string{"vault", "key"}, nil)
	descChecksPending = prometheus.NewDesc("cmkd_checks_pending",
		"Keys with a check running or asked for and not started: an event deferred to its key's next slot "+
			"is answered when this falls.", nil, nil)
)

func (c keyCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descProbed, descAge, descOutcome, descInterval, descRewrap, descRewrapRunning, descChecksPending} {
		ch <- d
	}
}

func (c keyCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	ch <- prometheus.MustNewConstMetric(descChecksPending, prometheus.GaugeValue, float64(c.s.pending()))
	for _, st := range c.s.statuses() {
		vault, key := st.Key.Vault, st.Key.URL()
		gauge := func(d *prometheus.Desc, v float64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{vault, key}, labels...)...)
		}
		probed := 0.0
		since := st.CheckedAt
		if !st.ProbedAt.IsZero() {
			probed, since = float64(st.ProbedAt.UnixNano())/1e9, st.ProbedAt
		}
		gauge(descProbed, probed)
		gauge(descAge, now.Sub(since).Seconds())
		gauge(descOutcome, 1, st.Outcome)
		gauge(descInterval, st.Interval.Seconds())
		gauge(descRewrap, float64(st.Rewrap.Done), "done")
		gauge(descRewrap, float64(st.Rewrap.Total), "total")
		running := 0.0
		if st.Rewrap.Running {
			running = 1
		}
		gauge(descRewrapRunning, running)
	}
}

// statuses is what this process knows of the keys it has checked.
func (s *scheduler) statuses() []store.KeyStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]store.KeyStatus, 0, len(s.keys))
	for _, k := range s.keys {
		if !k.status.Key.IsZero() {
			st := k.status
			st.Interval = k.vault.interval
			out = append(out, st)
		}
	}
	return out
}

// pending counts the keys with a check running or waiting to start.
func (s *scheduler) pending() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range s.keys {
		if k.checking || k.next != nil {
			n++
		}
	}
	return n
}
