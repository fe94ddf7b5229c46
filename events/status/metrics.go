package status

import "github.com/prometheus/client_golang/prometheus"

type relayMetrics struct {
	published prometheus.Counter
	failures  prometheus.Counter
	depth     prometheus.Gauge
	latency   prometheus.Histogram
}

func newRelayMetrics(reg prometheus.Registerer) (*relayMetrics, error) {
	m := &relayMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "cmkd_status_published_total", Help: "Status events published to JetStream."}),
		failures:  prometheus.NewCounter(prometheus.CounterOpts{Name: "cmkd_status_publish_failures_total", Help: "Failed status publishes (NATS down or slow); retried."}),
		depth:     prometheus.NewGauge(prometheus.GaugeOpts{Name: "cmkd_outbox_depth", Help: "Outbox entries claimed in the last batch (a full batch means a backlog)."}),
		latency:   prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cmkd_status_publish_seconds", Help: "Time for JetStream to acknowledge a status event."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.published, m.failures, m.depth, m.latency} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
