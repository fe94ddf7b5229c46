package events

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
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
	if reg != nil {
		c = registerCounter(reg, c)
	}
	for _, t := range append(knownTypes, typeOther) {
		for _, o := range []string{outcomeAccepted, outcomeIgnored, outcomeDropped, outcomeMalformed} {
			c.WithLabelValues(t, o)
		}
	}
	return c
}

// registerCounter registers c, or reuses the collector already registered
// under the same name, so that several decoders may share one registry.
func registerCounter(reg prometheus.Registerer, c *prometheus.CounterVec) *prometheus.CounterVec {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(*prometheus.CounterVec); ok {
				return existing
			}
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
