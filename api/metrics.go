package api

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/internal/promx"
)

type metrics struct {
	requests *prometheus.CounterVec
	seconds  *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		requests: promx.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cmkd_api_requests_total",
			Help: "Data API requests by route and HTTP status code.",
		}, []string{"route", "code"})),
		seconds: promx.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "cmkd_api_request_seconds",
			Help:    "Time to answer a data API request, by route.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route"})),
	}
}

// init makes the route's histogram series exist from the start.
func (m *metrics) init(route string) { m.seconds.WithLabelValues(route) }

func (m *metrics) observe(route string, code int, d time.Duration) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.seconds.WithLabelValues(route).Observe(d.Seconds())
}
