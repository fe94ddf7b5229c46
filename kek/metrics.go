package kek

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/internal/promx"
)

type metrics struct {
	calls     *prometheus.CounterVec
	seconds   *prometheus.HistogramVec
	throttled *prometheus.CounterVec
	rate      *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_kv_calls_total", Help: "Key Vault calls by vault, operation and outcome.",
		}, []string{"vault", "op", "outcome"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "cmkd_kv_call_seconds", Help: "Key Vault call latency, one try.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"vault", "op"}),
		throttled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_kv_throttled_total", Help: "Key Vault answers 429 by vault.",
		}, []string{"vault"}),
		rate: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "cmkd_kv_rate_limit", Help: "Current adaptive call rate limit per vault, calls per second.",
		}, []string{"vault"}),
	}
	m.calls = promx.Register(reg, m.calls)
	m.seconds = promx.Register(reg, m.seconds)
	m.throttled = promx.Register(reg, m.throttled)
	m.rate = promx.Register(reg, m.rate)
	return m
}

// outcomeLabel names a call's result for cmkd_kv_calls_total.
func outcomeLabel(e *Error) string {
	if e == nil {
		return "ok"
	}
	switch e.Kind {
	case ErrDisabled:
		return "disabled"
	case ErrAccessDenied:
		return "access_denied"
	case ErrNotFound:
		return "not_found"
	case ErrThrottled:
		return "throttled"
	case ErrUnavailable:
		return "unavailable"
	case ErrExpired:
		return "expired"
	case ErrNotYetValid:
		return "not_yet_valid"
	case ErrOperationForbidden:
		return "operation_forbidden"
	default:
		return "bad_request"
	}
}
