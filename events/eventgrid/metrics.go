package eventgrid

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Delivery outcomes, the values of the outcome label.
const (
	outcomeHandled   = "handled"   // handler succeeded; acknowledged
	outcomeIgnored   = "ignored"   // not for cmkd; acknowledged
	outcomeRetried   = "retried"   // handler failed; released
	outcomeRejected  = "rejected"  // handler failed permanently; dead-lettered
	outcomeMalformed = "malformed" // undecodable; dead-lettered
)

type metrics struct {
	deliveries   *prometheus.CounterVec
	duration     prometheus.Histogram
	inFlight     prometheus.Gauge
	receiveErrs  prometheus.Counter
	settleFails  *prometheus.CounterVec
	renewalFails prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, topic, sub string) (*metrics, error) {
	labels := prometheus.Labels{"topic": topic, "subscription": sub}
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_eventgrid_deliveries_total", Help: "Event Grid deliveries by how they were settled.", ConstLabels: labels,
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cmkd_eventgrid_handle_duration_seconds", Help: "Time from receive to settle.", ConstLabels: labels,
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cmkd_eventgrid_in_flight", Help: "Events received and not yet settled.", ConstLabels: labels,
		}),
		receiveErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cmkd_eventgrid_receive_errors_total", Help: "Failed receive calls.", ConstLabels: labels,
		}),
		settleFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_eventgrid_settle_failures_total", Help: "Settle calls or lock tokens that failed, by operation.", ConstLabels: labels,
		}, []string{"op"}),
		renewalFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cmkd_eventgrid_lock_renewal_failures_total", Help: "Lock renewals that failed.", ConstLabels: labels,
		}),
	}
	for _, o := range []string{outcomeHandled, outcomeIgnored, outcomeRetried, outcomeRejected, outcomeMalformed} {
		m.deliveries.WithLabelValues(o)
	}
	for _, op := range []string{opAck, opRelease, opReject} {
		m.settleFails.WithLabelValues(op)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.duration, m.inFlight, m.receiveErrs, m.settleFails, m.renewalFails} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
