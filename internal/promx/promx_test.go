package promx_test

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/internal/promx"
)

func TestRegisterSharesOneCollector(t *testing.T) {
	reg := prometheus.NewRegistry()
	opts := prometheus.CounterOpts{Name: "cmkd_test_total", Help: "test"}
	a := promx.Register(reg, prometheus.NewCounterVec(opts, []string{"x"}))
	b := promx.Register(reg, prometheus.NewCounterVec(opts, []string{"x"}))
	if a != b {
		t.Fatal("second registration did not return the first collector")
	}
	b.WithLabelValues("1").Inc()
	mfs, err := reg.Gather()
	if err != nil || len(mfs) != 1 || mfs[0].GetMetric()[0].GetCounter().GetValue() != 1 {
		t.Fatalf("gathered %v, %v", mfs, err)
	}
	// A nil registry leaves the collector unregistered but usable.
	c := promx.Register(nil, prometheus.NewCounter(opts))
	c.Inc()
}

func TestRegisterPanicsOnAClash(t *testing.T) {
	reg := prometheus.NewRegistry()
	promx.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Name: "cmkd_clash", Help: "a"}))
	defer func() {
		if recover() == nil {
			t.Fatal("a gauge registered under a counter's name did not panic")
		}
	}()
	promx.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{Name: "cmkd_clash", Help: "a"}))
}
