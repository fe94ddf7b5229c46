package throughput

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/bench"
)

// pollEvery is how often waitFor checks its condition. A phase's end is
// found this late at most: under 0.1 % of a full phase.
const pollEvery = time.Millisecond

// waitFor polls cond until it holds, fails, or timeout or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	return bench.WaitFor(ctx, timeout, pollEvery, what, cond)
}

// counts is a counter vector's values by one label.
type counts map[string]float64

func (c counts) total() float64 {
	var n float64
	for _, v := range c {
		n += v
	}
	return n
}

// minus returns c - prev, per label value.
func (c counts) minus(prev counts) counts {
	out := counts{}
	for k, v := range c {
		out[k] = v - prev[k]
	}
	return out
}

// counter reads the counter vector name from g, summed by label.
func counter(g prometheus.Gatherer, name, label string) (counts, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	out := counts{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label {
					out[lp.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	return out, nil
}

// gauge reads the unlabelled gauge name from g (0 when absent).
func gauge(g prometheus.Gatherer, name string) (float64, error) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, err
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), nil
		}
	}
	return 0, nil
}
