package worker

import (
	"errors"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/store"
)

type metrics struct {
	events     *prometheus.CounterVec
	handling   *prometheus.HistogramVec
	panics     *prometheus.CounterVec
	reconciles *prometheus.CounterVec
	duration   prometheus.Histogram
	rewrapped  prometheus.Counter
	tenants    *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_events_total", Help: "Lifecycle events handled, by source, type and outcome (ack, retry, dead_letter).",
		}, []string{"source", "type", "outcome"}),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cmkd_event_handling_seconds", Help: "Time to handle one lifecycle event, by source.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}, []string{"source"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_handler_panics_total", Help: "Event handler panics recovered, by source; each event was retried.",
		}, []string{"source"}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_probes_total", Help: "Key reconciles (probe and converge), by outcome.",
		}, []string{"outcome"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "cmkd_reconcile_seconds", Help: "Time to reconcile one key, rewraps included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 4, 10),
		}),
		rewrapped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cmkd_deks_rewrapped_total", Help: "DEKs re-wrapped under a new key version.",
		}),
		tenants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cmkd_tenants", Help: "Tenants by state, as of the last reconcile pass.",
		}, []string{"state"}),
	}
	for _, c := range []prometheus.Collector{m.events, m.handling, m.panics, m.reconciles, m.duration, m.rewrapped, m.tenants} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, o := range []handlers.Outcome{handlers.NothingToDo, handlers.Sealed, handlers.Waiting, handlers.Rewrapped, handlers.InStep} {
		m.reconciles.WithLabelValues(string(o))
	}
	m.reconciles.WithLabelValues("error")
	m.reconciles.WithLabelValues("busy")
	m.tenants.WithLabelValues(store.StateActive)
	m.tenants.WithLabelValues(store.StateSealed)
	return m, nil
}

func (m *metrics) observe(res handlers.Result, err error, d time.Duration) {
	m.duration.Observe(d.Seconds())
	if res.Rewrap != nil {
		m.rewrapped.Add(float64(res.Rewrap.Rewrapped))
	}
	switch {
	case errors.Is(err, ErrBusy):
		m.reconciles.WithLabelValues("busy").Inc()
	case err != nil:
		m.reconciles.WithLabelValues("error").Inc()
	default:
		m.reconciles.WithLabelValues(string(res.Outcome)).Inc()
	}
}

// event counts one delivery. Types are the ones cmkd acts on (the decoder
// drops the rest), so the label's values are bounded.
func (m *metrics) event(source, typ string, v events.Verdict, d time.Duration) {
	m.events.WithLabelValues(source, typ, v.String()).Inc()
	m.handling.WithLabelValues(source).Observe(d.Seconds())
}

func (m *metrics) countTenants(ts []store.Tenant) {
	n := map[string]int{store.StateActive: 0, store.StateSealed: 0}
	for _, t := range ts {
		n[t.State]++
	}
	for state, c := range n {
		m.tenants.WithLabelValues(state).Set(float64(c))
	}
}
