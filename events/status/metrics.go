package status

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type relayMetrics struct {
	published prometheus.Counter
	failures  prometheus.Counter
	depth     prometheus.Gauge
	latency   prometheus.Histogram
}

func newRelayMetrics(reg prometheus.Registerer) (*relayMetrics, error) {
	m := &relayMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "cmkd_status_published_total",
			Help: "Status events JetStream acknowledged (duplicates it dropped included)."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "cmkd_status_publish_failures_total",
			Help: "Status publishes that failed (NATS down or slow, or an event that cannot be encoded); retried."}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cmkd_outbox_depth",
			Help: "Outbox entries this relay has claimed and not yet published (a full batch means a backlog)."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cmkd_status_publish_seconds",
			Help: "Time for JetStream to acknowledge a status event.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.published, m.failures, m.depth, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register status metrics: %w", err)
		}
	}
	return m, nil
}
