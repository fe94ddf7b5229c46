package webhook

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/internal/promx"
)

// Request outcomes, the "outcome" label of cmkd_webhook_requests_total.
const (
	outcomeHandled      = "handled"
	outcomeHandshake    = "handshake"
	outcomeUnauthorized = "unauthorized"
	outcomeTooLarge     = "too_large"
	outcomeMalformed    = "malformed"
	outcomeRejected     = "rejected"
	outcomeRetry        = "retry"
	outcomeBadRequest   = "bad_request"
)

func newRequestCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cmkd_webhook_requests_total",
		Help: "Webhook requests, by outcome.",
	}, []string{"outcome"})
	c = promx.Register(reg, c)
	for _, o := range []string{outcomeHandled, outcomeHandshake, outcomeUnauthorized, outcomeTooLarge,
		outcomeMalformed, outcomeRejected, outcomeRetry, outcomeBadRequest} {
		c.WithLabelValues(o)
	}
	return c
}
