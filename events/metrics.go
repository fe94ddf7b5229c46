package events

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/internal/promx"
)

// Decode outcomes, the "outcome" label of cmkd_events_decoded_total.
const (
	outcomeAccepted  = "accepted"
	outcomeIgnored   = "ignored"
	outcomeDropped   = "dropped"
	outcomeMalformed = "malformed"
)

// typeOther labels every event type cmkd does not act on, so that a
// publisher cannot grow the metric's cardinality.
const typeOther = "other"

var knownTypes = []string{
	TypeKeyNewVersionCreated, TypeKeyNearExpiry, TypeKeyExpired,
	TypeVaultAccessPolicyChanged, TypeProbe,
}

func newDecodedCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmkd_events_decoded_total",
		Help: "Events decoded, by event type and outcome (accepted, ignored, dropped, malformed).",
	}, []string{"type", "outcome"})
	c = promx.Register(reg, c)
	for _, t := range append(knownTypes, typeOther) {
		for _, o := range []string{outcomeAccepted, outcomeIgnored, outcomeDropped, outcomeMalformed} {
			c.WithLabelValues(t, o)
		}
	}
	return c
}

func metricType(t string) string {
	for _, k := range knownTypes {
		if k == t {
			return t
		}
	}
	return typeOther
}
