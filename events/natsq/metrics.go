package natsq

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/internal/promx"
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
	m.messages = promx.Register(reg, m.messages)
	m.inFlight = promx.Register(reg, m.inFlight)
	for _, o := range []string{outcomeAck, outcomeNak, outcomeDLQ, outcomeLost} {
		m.messages.WithLabelValues(o)
	}
	return m
}
