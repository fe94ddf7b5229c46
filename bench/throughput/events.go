// Package throughput benchmarks cmkd's event throughput: Key Vault events from
// the Event Grid emulator (pull, batches of 100) and from the CMKD_EVENTS
// JetStream work queue, each through the real source, Worker.Handle and a
// Reconcile that probes the Key Vault emulator, to acknowledgement. Each
// rate is a ratio to the raw transport's rate in the same run, and the
// probes per event show how well duplicate events for a key coalesce.
package throughput

import (
	"context"
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd/bench"
	cevents "github.com/cmkd-io/cmkd/events"
	egsrc "github.com/cmkd-io/cmkd/events/eventgrid"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/worker"
)

// Scenario is the event-throughput benchmark.
var Scenario = bench.Scenario{Name: name, Title: title, Run: run}

const (
	name  = "events"
	title = "Event throughput"
)

// probeGoal makes "well below 1" probe per event a number: at most one
// probe per two events. The floor of this event mix is about 0.2 (10 keys,
// 100 events in flight: a probe answers the ~5 events of its key that
// arrived while the previous one ran), so a lower bar would measure the mix,
// not the coalescing.
const probeGoal = 0.5

// sizes are one run's dimensions.
type sizes struct {
	events int // per drain: three per source
	keys   int
}

func sizesFor(o bench.Options) sizes {
	return sizes{events: bench.Pick(o, 10_000, 300), keys: bench.Pick(o, 10, 3)}
}

// drains are one source's measured drains, each over its own events.
type drains struct {
	raw  measured // the transport's client alone, no handler
	noop measured // cmkd's source with a handler that does nothing
	cmkd measured // cmkd's source handing events to Worker.Handle
}

// Sources, as metric names start.
const (
	srcEG = "Event Grid"
	srcJS = "CMKD_EVENTS"
)

func run(ctx context.Context, o bench.Options) (*bench.Result, error) {
	sz := sizesFor(o)
	o.Say("starting emulators, NATS and the worker; %d keys with a tenant each", sz.keys)
	r, err := newRig(ctx, o, sz.keys)
	if err != nil {
		return nil, err
	}
	defer r.close()
	eg, err := r.eventGrid(ctx, o, sz.events)
	if err != nil {
		return nil, err
	}
	js, err := r.jetStream(ctx, o, sz.events)
	if err != nil {
		return nil, err
	}
	return report(sz, eg, js), nil
}

// step is one drain of a source's phases.
type step struct {
	what string
	into *measured
	run  func() (measured, error)
}

// drain queues n fresh events before each step (fresh ids: JetStream drops
// a repeated id as a duplicate) and runs it.
func drain(o bench.Options, src string, n int, queue func() error, steps []step) error {
	for _, s := range steps {
		o.Say("%s: %d events, %s", src, n, s.what)
		if err := queue(); err != nil {
			return fmt.Errorf("%s: queue events: %w", src, err)
		}
		m, err := s.run()
		if err != nil {
			return fmt.Errorf("%s, %s: %w", src, s.what, err)
		}
		*s.into = m
		if m.probes == 0 {
			o.Say("  %.0f events/s", m.rate())
			continue
		}
		o.Say("  %.0f events/s, %.3f probes per event", m.rate(), m.perEvent(m.probes))
	}
	return nil
}

// noop is the handler that measures a source alone.
func noop(context.Context, cevents.Event) error { return nil }

func (r *rig) eventGrid(ctx context.Context, o bench.Options, n int) (drains, error) {
	var d drains
	queue := func() error { return r.publishEG(mix(r.keys, n, time.Now())) }
	return d, drain(o, srcEG, n, queue, []step{
		{"raw aznamespaces receive + acknowledge", &d.raw, func() (measured, error) { return r.rawEG(ctx, n) }},
		{"cmkd's source, no-op handler", &d.noop, func() (measured, error) { return r.cmkdEG(ctx, n, noop) }},
		{"cmkd's source and worker", &d.cmkd, func() (measured, error) { return r.cmkdEG(ctx, n, nil) }},
	})
}

func (r *rig) jetStream(ctx context.Context, o bench.Options, n int) (drains, error) {
	var d drains
	js, err := r.ensureStream(ctx)
	if err != nil {
		return d, err
	}
	queue := func() error { return enqueue(ctx, js, mix(r.keys, n, time.Now())) }
	return d, drain(o, srcJS, n, queue, []step{
		{"raw nats.go consume + ack", &d.raw, func() (measured, error) { return r.rawJS(ctx, js, n) }},
		{"cmkd's natsq source, no-op handler", &d.noop, func() (measured, error) { return r.cmkdJS(ctx, js, n, noop) }},
		{"cmkd's natsq source and worker", &d.cmkd, func() (measured, error) { return r.cmkdJS(ctx, js, n, nil) }},
	})
}

// Metric names are the source's name and one of these.
const (
	mRaw         = "raw transport, no handler"
	mNoop        = "cmkd source, no-op handler"
	mCmkd        = "cmkd source → worker (probe) → acknowledge"
	mRatio       = "cmkd ÷ raw"
	mNoopRatio   = "cmkd source alone ÷ raw"
	mProbes      = "probes per event"
	mCalls       = "Key Vault calls per event"
	mUnacked     = "events not acknowledged"
	mRewrapped   = "reconciles that rewrapped"
	unitRate     = "events/s"
	unitPerEvent = "per event"
)

func metric(src, what string) string { return src + ": " + what }

func report(sz sizes, eg, js drains) *bench.Result {
	r := &bench.Result{Scenario: name, Title: title, Setup: fmt.Sprintf(
		"%d Key Vault events per drain (9 in 10 KeyNewVersionCreated, 1 in 10 KeyNearExpiry, each naming its key's "+
			"current version) round-robin over %d RSA-2048 keys with a tenant each, queued before the clock starts; "+
			"cmkd's sources take batches of %d with %d events in flight (worker: %d keys at once). Baselines, same run, "+
			"own events, no handler: aznamespaces receive %d then acknowledge them in one call; nats.go pull %d, ack each.",
		sz.events, sz.keys, batch, batch, worker.DefaultConcurrency, batch, batch)}
	for _, s := range []struct {
		src string
		d   drains
	}{{srcEG, eg}, {srcJS, js}} {
		addSource(r, s.src, s.d)
	}
	goal(r, sz, eg, js)
	r.Note("`cmkd run` keeps the sources' defaults: Event Grid receives of %d with %d in flight, natsq %d in flight; "+
		"fewer events in flight leave fewer duplicates to coalesce.", egsrc.DefaultMaxEvents, egsrc.DefaultMaxInFlight,
		natsq.DefaultMaxInFlight)
	r.Note("cmkd's Event Grid source acknowledges each event in its own request (events/eventgrid/deliver.go), "+
		"holding its in-flight slot until then; the baseline acknowledges %d per request.", batch)
	return r
}

func addSource(r *bench.Result, src string, d drains) {
	c := d.cmkd
	r.Add(metric(src, mRaw), d.raw.rate(), unitRate)
	r.Add(metric(src, mNoop), d.noop.rate(), unitRate)
	r.Add(metric(src, mCmkd), c.rate(), unitRate)
	r.Ratio(metric(src, mNoopRatio), d.noop.rate(), d.raw.rate())
	r.Ratio(metric(src, mRatio), c.rate(), d.raw.rate())
	r.Add(metric(src, mProbes), c.perEvent(c.probes), unitPerEvent)
	r.Add(metric(src, mCalls), c.perEvent(c.kvCalls), unitPerEvent)
	r.Add(metric(src, mUnacked), float64(d.raw.unacked+d.noop.unacked+c.unacked), "events")
	r.Add(metric(src, mRewrapped), c.reconciles["rewrapped"], "reconciles")
	r.Note("%s: %.0f reconciles (by outcome %v) for %d events, %.1f Key Vault calls each (the probe's GET and "+
		"the remote unwrap proving the version in use still unwraps); handler results %v.",
		src, c.reconciles.total(), nonZero(c.reconciles), c.events, float64(c.kvCalls)/max(1, float64(c.probes)),
		nonZero(c.handled))
}

func goal(r *bench.Result, sz sizes, eg, js drains) {
	pe, pj := eg.cmkd.perEvent(eg.cmkd.probes), js.cmkd.perEvent(js.cmkd.probes)
	r.Goal(fmt.Sprintf("Probes per event well below 1 (< %g): duplicate events for a key coalesce", probeGoal),
		pe < probeGoal && pj < probeGoal,
		fmt.Sprintf("%.3f (%s), %.3f (%s)", pe, srcEG, pj, srcJS),
		fmt.Sprintf("events in flight per key: a key has one probe running and one queued, so a probe answers "+
			"the events that arrived while the previous one ran — about half of the %d in flight per key at best (0.2 probes per event)",
			batch/sz.keys))
}

func nonZero(c counts) map[string]float64 {
	out := map[string]float64{}
	for k, v := range c {
		if v != 0 {
			out[k] = v
		}
	}
	return out
}
