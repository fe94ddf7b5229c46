// Package seal benchmarks how fast cmkd stops serving data once a customer
// disables their key: many tenants on one Key Vault key, readers hammering
// Store.Get, the key disabled in the emulator, and the real worker (probe
// loop, Reconciler, seal broadcast, status relay to JetStream) left to
// notice and seal every tenant.
package seal

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd/bench"
)

// Scenario is the seal-latency benchmark.
var Scenario = bench.Scenario{Name: name, Title: title, Run: run}

const (
	name  = "seal"
	title = "Seal latency"
)

// Goals of the benchmark issue.
const (
	readGoal   = 100 * time.Millisecond // no read later than this after the probe
	sealedSlop = time.Second            // disable → sealed ≤ probe interval + this
)

const recordSize = 1 << 10

// sizes are one run's dimensions.
type sizes struct {
	tenants, records, readers int
	probe                     time.Duration // the worker's ProbeInterval
	window                    time.Duration // each reads/s measurement
	timeout                   time.Duration // for every tenant to be sealed
}

func sizesFor(o bench.Options) sizes {
	probe := bench.Pick(o, time.Second, 200*time.Millisecond)
	return sizes{
		tenants: bench.Pick(o, 1000, 20), records: 2, readers: bench.Pick(o, 100, 8),
		probe: probe, window: bench.Pick(o, time.Second, 200*time.Millisecond),
		timeout: 2*probe + bench.Pick(o, 30*time.Second, 10*time.Second),
	}
}

// timeline is what one run observed; instants are since the run's origin.
type timeline struct {
	rate1, rateN float64       // successful reads/s: one reader, then all
	disabled     time.Duration // just before the disable request was sent
	probe        time.Duration // the worker's probe learned of the disable
	sealed       map[string]time.Duration
	lastRead     map[string]time.Duration
	onStream     time.Duration // the last sealed event read back from JetStream
	broadcast    time.Duration // the last seal broadcast received
	refused      int64         // reads refused with ErrSealed
}

func run(ctx context.Context, o bench.Options) (*bench.Result, error) {
	sz := sizesFor(o)
	start := time.Now()
	rec := newRecorder(start)
	env, err := bench.NewEnv(ctx, bench.EnvConfig{Dir: o.Dir, Logger: rec.logger(o.Logger)})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	l, err := prepare(ctx, o, env, sz, start)
	if err != nil {
		return nil, err
	}
	tl, err := measure(ctx, o, env, l, rec, sz)
	if err != nil {
		return nil, err
	}
	r := report(sz, tl)
	r.Elapsed = time.Since(start)
	return r, nil
}

// prepare seeds the tenants, writes their records and reads each once, so
// that every DEK is in the store's cache before anything is measured.
func prepare(ctx context.Context, o bench.Options, env *bench.Env, sz sizes, origin time.Time) (*load, error) {
	o.Say("seeding %d tenants with %d × %d B records each", sz.tenants, sz.records, recordSize)
	seeded, err := env.Seed(ctx, sz.tenants, 1, nil)
	if err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	keys := make([]string, sz.records)
	for i := range keys {
		keys[i] = fmt.Sprintf("r-%d", i)
	}
	value := make([]byte, recordSize)
	rand.Read(value)
	for _, t := range seeded.Tenants {
		for _, k := range keys {
			if err := env.Store.Put(ctx, t, k, value); err != nil {
				return nil, err
			}
		}
		if _, err := env.Store.Get(ctx, t, keys[0]); err != nil {
			return nil, err
		}
	}
	return newLoad(env.Store, seeded.Tenants, keys, origin), nil
}

// measure runs the scenario proper: baseline reads/s, worker and watchers,
// all readers, the disable, and the wait for every tenant to be sealed.
func measure(ctx context.Context, o bench.Options, env *bench.Env, l *load, rec *recorder, sz sizes) (timeline, error) {
	var tl timeline
	var err error
	if tl.rate1, err = baseline(ctx, l, sz.window); err != nil {
		return tl, err
	}
	o.Say("baseline: 1 reader, %.0f reads/s", tl.rate1)
	n, err := bench.StartNATS(o.Dir)
	if err != nil {
		return tl, err
	}
	defer n.Close()
	if err := ensureStream(ctx, n.Conn); err != nil {
		return tl, err
	}
	w, err := watch(ctx, n.Server.ClientURL(), l.origin, len(l.tenants))
	if err != nil {
		return tl, err
	}
	defer w.close()
	wk, err := startWorker(ctx, env, n.Conn, sz.probe, o.Logger)
	if err != nil {
		return tl, err
	}
	defer wk.stop()
	if err := disableUnderLoad(ctx, o, env, l, w, wk, sz, &tl); err != nil {
		return tl, err
	}
	return tl, collect(rec, l, w, &tl)
}

func baseline(ctx context.Context, l *load, window time.Duration) (float64, error) {
	one := l.start(ctx, 1)
	defer one.stop()
	return rate(ctx, one, window)
}

// disableUnderLoad starts every reader, measures their reads/s, disables
// the key and waits until every tenant's seal is on the stream and
// broadcast. The readers run until then, so the last read that could
// succeed is seen.
func disableUnderLoad(ctx context.Context, o bench.Options, env *bench.Env, l *load, w *watchers, wk *runningWorker, sz sizes, tl *timeline) error {
	all := l.start(ctx, sz.readers)
	defer all.stop()
	var err error
	if tl.rateN, err = rate(ctx, all, sz.window); err != nil {
		return err
	}
	o.Say("%d readers: %.0f reads/s; disabling the key (probe interval %s)", sz.readers, tl.rateN, sz.probe)
	// Taken before the request: the disable may take effect any time
	// during it, and starting early only lengthens what is measured.
	tl.disabled = time.Since(l.origin)
	if err := env.SetEnabled(ctx, false); err != nil {
		return fmt.Errorf("disable key: %w", err)
	}
	if err := w.wait(ctx, wk, sz.timeout); err != nil {
		return err
	}
	o.Say("all %d tenants sealed on the stream", len(l.tenants))
	return nil
}

// collect gathers what the recorder, readers and watchers saw; the readers
// have stopped.
func collect(rec *recorder, l *load, w *watchers, tl *timeline) error {
	var ok bool
	if tl.probe, ok = rec.probeSaw(); !ok {
		return fmt.Errorf("no Key Vault refusal of the disabled key was logged: cannot time the worker's probe")
	}
	tl.sealed = rec.sealedAt()
	if len(tl.sealed) != len(l.tenants) {
		return fmt.Errorf("the store logged %d seals for %d tenants", len(tl.sealed), len(l.tenants))
	}
	tl.lastRead = make(map[string]time.Duration, len(l.tenants))
	for i, at := range l.lastRead() {
		tl.lastRead[l.tenants[i]] = at
	}
	refused, failed, first := l.errs()
	if failed > 0 {
		return fmt.Errorf("%d reads failed other than sealed, first: %w", failed, first)
	}
	tl.refused = refused
	tl.onStream, _ = w.stream.last()
	tl.broadcast, _ = w.broadcast.last()
	return nil
}
