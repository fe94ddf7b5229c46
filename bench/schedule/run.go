package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/worker"
)

// runningWorker is a cmkd worker started by startWorker, with the registry
// its metrics are read from.
type runningWorker struct {
	*worker.Worker
	reg    *prometheus.Registry
	cancel context.CancelFunc
	exited chan struct{} // closed when Run returns; err is then set
	err    error
}

// startWorker runs the worker as `cmkd run` wires it (cmd/cmkd/run.go),
// without event sources, relay or NATS: every check is one the scheduler
// starts on its own, or one the scenario asks for with Reconcile, as an
// event would. handlerLog is the Reconciler's logger (a tap, to time its
// rewraps); the worker's own is log.
func startWorker(ctx context.Context, st *store.Store, kc *kek.Client, instance string, probe time.Duration,
	handlerLog, log *slog.Logger) (*runningWorker, error) {
	rec, err := handlers.New(handlers.Config{Store: st, KEK: kc, Instance: instance, Logger: handlerLog})
	if err != nil {
		return nil, err
	}
	reg := prometheus.NewRegistry()
	w, err := worker.New(worker.Config{
		Store: st, Reconciler: rec, Limits: kc, Instance: instance, ProbeInterval: probe,
		Registerer: reg, Gatherer: reg, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	rw := &runningWorker{Worker: w, reg: reg, cancel: cancel, exited: make(chan struct{})}
	go func() {
		rw.err = w.Run(wctx)
		close(rw.exited)
	}()
	return rw, nil
}

// stop ends the worker (a running rewrap stops after the DEKs under way)
// and returns what Run returned.
func (w *runningWorker) stop() error {
	w.cancel()
	<-w.exited
	if errors.Is(w.err, context.Canceled) {
		return nil
	}
	return w.err
}

// errStopped says why the worker ended before a phase did.
func (w *runningWorker) errStopped() error {
	return fmt.Errorf("worker stopped early: %v", w.err)
}

// series is one labelled value of a metric.
type series struct {
	labels map[string]string
	value  float64
}

// gather reads the gauge or counter name from the worker's metrics.
func (w *runningWorker) gather(name string) ([]series, error) {
	mfs, err := w.reg.Gather()
	if err != nil {
		return nil, err
	}
	var out []series
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			s := series{labels: map[string]string{}}
			for _, lp := range m.GetLabel() {
				s.labels[lp.GetName()] = lp.GetValue()
			}
			switch {
			case m.GetGauge() != nil:
				s.value = m.GetGauge().GetValue()
			case m.GetCounter() != nil:
				s.value = m.GetCounter().GetValue()
			}
			out = append(out, s)
		}
	}
	return out, nil
}

// value is the one series of name whose labels include where; ok is false
// when there is none.
func (w *runningWorker) value(name string, where map[string]string) (float64, bool, error) {
	ss, err := w.gather(name)
	if err != nil {
		return 0, false, err
	}
	for _, s := range ss {
		match := true
		for k, v := range where {
			match = match && s.labels[k] == v
		}
		if match {
			return s.value, true, nil
		}
	}
	return 0, false, nil
}

// counts sums the counter name by the value of label.
func (w *runningWorker) counts(name, label string) (map[string]float64, error) {
	ss, err := w.gather(name)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, s := range ss {
		out[s.labels[label]] += s.value
	}
	return out, nil
}

// checks is the worker's count of finished checks and rewraps by outcome
// (handlers' outcomes, "error", "busy").
func (w *runningWorker) checks() (map[string]float64, error) {
	return w.counts("cmkd_probes_total", "outcome")
}

// minus returns a - b per key.
func minus(a, b map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range a {
		out[k] = v - b[k]
	}
	return out
}

// checksOnly sums the outcomes of checks, leaving out rewraps.
func checksOnly(byOutcome map[string]float64) float64 {
	var n float64
	for o, v := range byOutcome {
		if o != string(handlers.Rewrapped) {
			n += v
		}
	}
	return n
}

// pollEvery is how often a condition on the worker's metrics is checked.
const pollEvery = 10 * time.Millisecond

// waitFor polls cond until it holds, fails, or timeout or ctx ends.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, error)) error {
	return bench.WaitFor(ctx, timeout, pollEvery, what, cond)
}
