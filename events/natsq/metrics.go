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
	// outcomeDropped is a message terminated without a dead letter, which
	// could not be stored.
	outcomeDropped = "dropped"
)

type metrics struct {
	messages     *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	inFlight     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_natsq_messages_total",
			Help: "CMKD_EVENTS messages settled, by outcome (ack, nak, dead_letter, dropped, settle_failed).",
		}, []string{"outcome"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_natsq_dead_lettered_total",
			Help: "CMKD_EVENTS messages given up on, by why (malformed, rejected, exhausted) and what became of them (copied to the dead-letter stream, a reference to a body too large copied, or dropped because no dead letter could be stored).",
		}, []string{"reason_kind", "outcome"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cmkd_natsq_in_flight",
			Help: "CMKD_EVENTS messages being handled now.",
		}),
	}
	m.messages = promx.Register(reg, m.messages)
	m.deadLettered = promx.Register(reg, m.deadLettered)
	m.inFlight = promx.Register(reg, m.inFlight)
	for _, o := range []string{outcomeAck, outcomeNak, outcomeDLQ, outcomeDropped, outcomeLost} {
		m.messages.WithLabelValues(o)
	}
	for _, k := range []string{kindMalformed, kindRejected, kindExhausted} {
		for _, o := range []string{dlCopied, dlReference, dlDropped} {
			m.deadLettered.WithLabelValues(k, o)
		}
	}
	return m
}
