package status

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type eventGridMetrics struct {
	published prometheus.Counter
	failures  *prometheus.CounterVec
	givenUp   prometheus.Counter
	depth     prometheus.Gauge
	pending   prometheus.Gauge
	latency   prometheus.Histogram
	requests  prometheus.Histogram
}

func newEventGridMetrics(reg prometheus.Registerer) (*eventGridMetrics, error) {
	m := &eventGridMetrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{Name: "cmkd_status_eventgrid_published_total",
			Help: "Status events Event Grid accepted (a retry after a crash may count one twice)."}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "cmkd_status_eventgrid_publish_failures_total",
			Help: "Event Grid publish requests that failed, by cause: unavailable (5xx, 429, network; retried), " +
				"auth (401, 403: credentials or role; retried slowly), refused (400, 413: the batch is split), store."},
			[]string{"cause"}),
		givenUp: prometheus.NewCounter(prometheus.CounterOpts{Name: "cmkd_status_eventgrid_given_up_total",
			Help: "Status events Event Grid can never accept (over the request limit, or refused alone), given up for it; NATS still has them."}),
		depth: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cmkd_status_eventgrid_claimed",
			Help: "Outbox entries this relay has claimed and not yet published to Event Grid."}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "cmkd_status_eventgrid_outbox_pending",
			Help: "Outbox entries not yet published to Event Grid by any relay, as of this relay's last claim."}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cmkd_status_eventgrid_publish_seconds",
			Help: "Time for Event Grid to accept a publish request.", Buckets: prometheus.ExponentialBuckets(0.002, 2, 13)}),
		requests: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "cmkd_status_eventgrid_request_bytes",
			Help: "Body size of the publish requests sent to Event Grid.", Buckets: prometheus.ExponentialBuckets(1024, 4, 6)}),
	}
	for _, cause := range []string{causeUnavailable, causeAuth, causeRefused, causeStore} {
		m.failures.WithLabelValues(cause)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.published, m.failures, m.givenUp, m.depth, m.pending, m.latency, m.requests} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register event grid metrics: %w", err)
		}
	}
	return m, nil
}

// Causes of a failed publish, as the failures metric labels them.
const (
	causeUnavailable = "unavailable"
	causeAuth        = "auth"
	causeRefused     = "refused"
	causeStore       = "store"
)
