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
	unreadable prometheus.Counter
	// ignoredBroadcasts counts seal broadcasts for active tenants.
	ignoredBroadcasts prometheus.Counter
	tenants           *prometheus.GaugeVec
	interval          *prometheus.GaugeVec
	stretched         *prometheus.GaugeVec
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
		ignoredBroadcasts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cmkd_seal_broadcasts_ignored_total",
			Help: "Seal broadcasts for a tenant the store says is active: forged, or from a failed seal; caches were kept.",
		}),
		unreadable: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cmkd_deks_unreadable_total",
			Help: "DEKs set aside because Key Vault cannot unwrap them (a corrupted wrapping); each reported as dek.unreadable.",
		}),
		tenants: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cmkd_tenants", Help: "Tenants by state, as of the last read of the keys in use.",
		}, []string{"state"}),
		interval: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cmkd_vault_probe_interval_seconds",
			Help: "Effective probe interval of a vault's keys: the configured one, or longer when the probe budget demands it.",
		}, []string{"vault"}),
		stretched: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cmkd_vault_probe_budget_exceeded",
			Help: "1 when probing a vault's keys at the configured interval would exceed the probe budget, so the interval is stretched.",
		}, []string{"vault"}),
	}
	for _, c := range []prometheus.Collector{m.events, m.handling, m.panics, m.reconciles, m.duration, m.rewrapped, m.unreadable, m.ignoredBroadcasts, m.tenants, m.interval, m.stretched} {
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
	m.unreadable.Add(float64(res.Unreadable))
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

// countKeys sets the tenant gauge from the keys in use.
func (m *metrics) countKeys(uses []store.KeyUse) {
	var active, sealed int
	for _, u := range uses {
		active, sealed = active+u.Active, sealed+u.Sealed
	}
	m.tenants.WithLabelValues(store.StateActive).Set(float64(active))
	m.tenants.WithLabelValues(store.StateSealed).Set(float64(sealed))
}

// vaultInterval records a vault's effective probe interval.
func (m *metrics) vaultInterval(vault string, d time.Duration, stretched bool) {
	m.interval.WithLabelValues(vault).Set(d.Seconds())
	v := 0.0
	if stretched {
		v = 1
	}
	m.stretched.WithLabelValues(vault).Set(v)
}
