package natsq

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Settlement outcomes, the "outcome" label of cmkd_natsq_messages_total.
const (
	outcomeAck  = "ack"
	outcomeNak  = "nak"
	outcomeDLQ  = "dead_letter"
	outcomeLost = "settle_failed"
)

type metrics struct {
	messages *prometheus.CounterVec
	inFlight prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_natsq_messages_total",
			Help: "CMKD_EVENTS messages settled, by outcome (ack, nak, dead_letter, settle_failed).",
		}, []string{"outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cmkd_natsq_in_flight",
			Help: "CMKD_EVENTS messages being handled now.",
		}),
	}
	if reg != nil {
		m.messages = register(reg, m.messages)
		m.inFlight = register(reg, m.inFlight)
	}
	for _, o := range []string{outcomeAck, outcomeNak, outcomeDLQ, outcomeLost} {
		m.messages.WithLabelValues(o)
	}
	return m
}

// register registers c or returns the collector already registered under
// its name, so that several sources may share a registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
