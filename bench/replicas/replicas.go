// Package replicas benchmarks cmkd scaled out: one against three replicas,
// each a process of its own with its own worker, kek client and pool on one
// PostgreSQL schema, rewrapping three keys in three throttled vaults; and
// how long the survivors take to resume the rewrap of a replica killed
// while it held the key's lease.
package replicas

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
	"github.com/cmkd-io/cmkd/worker"
)

// Scenario is the replicas benchmark.
var Scenario = bench.Scenario{Name: name, Title: title, Run: run}

const (
	name  = "replicas"
	title = "Replicas: one vs three rewrapping three throttled vaults, and taking over a dead replica's key"
	// keys is how many vaults (one key each) rewrap at once.
	keys = 3
	// many is the larger fleet of replicas.
	many = 3
	// pollEvery is how often the harness reads progress from the store.
	pollEvery = 20 * time.Millisecond
)

// Metric names the smoke test checks.
const (
	mOne       = "1 replica: DEKs per second, aggregate"
	mMany      = "3 replicas: DEKs per second, aggregate"
	mRatio     = "3 replicas ÷ 1 replica, aggregate DEKs per second"
	mTTL       = "lease TTL"
	mLeft      = "takeover: lease time left at the kill"
	mLeaseGone = "takeover: kill → a survivor holds the lease"
	mResumed   = "takeover: kill → rewrap resumed"
	mResumeTTL = "takeover: kill → rewrap resumed ÷ lease TTL"
	mVerified  = "takeover: DEKs of the dead replica's key that unwrap to their check value"
	mTotal     = "DEKs per key"
)

// sizes are one run's dimensions.
type sizes struct {
	tenants, perTenant int // per vault
	limit              int // emulator operations per window, each vault
	window             time.Duration
	probe, ttl         time.Duration
	// killAt is the share of the key's DEKs moved when its replica is
	// killed.
	killAt float64
}

func (s sizes) deks() int          { return s.tenants * s.perTenant }
func (s sizes) perSecond() float64 { return float64(s.limit) / s.window.Seconds() }

// expected is how long one vault's rewrap takes at the vault's limit.
func (s sizes) expected() time.Duration {
	return time.Duration(float64(s.deks()) / s.perSecond() * float64(time.Second))
}

func sizesFor(o bench.Options) sizes {
	// Smoke: a rewrap lasts about two seconds, long enough to kill its
	// replica halfway, and a lease lasts two.
	return sizes{
		tenants: bench.Pick(o, 20, 4), perTenant: bench.Pick(o, 100, 15),
		limit: bench.Pick(o, 1000, 60), window: bench.Pick(o, 10*time.Second, time.Second),
		probe: bench.Pick(o, time.Second, 500*time.Millisecond), ttl: bench.Pick(o, worker.DefaultLeaseTTL, 2*time.Second),
		killAt: 0.25,
	}
}

// env is what every phase shares: the vaults, the schema, and the
// harness's own store on it, which seeds and watches.
type env struct {
	o      bench.Options
	sz     sizes
	schema *bench.PGSchema
	vaults []*vault
	kek    *kek.Client
	st     *store.Store
}

func run(ctx context.Context, o bench.Options) (*bench.Result, error) {
	sz := sizesFor(o)
	res := &bench.Result{Scenario: name, Title: title, Setup: setup(sz)}
	schema, err := bench.NewPGSchema(name)
	if errors.Is(err, bench.ErrNoPostgres) {
		o.Say("skipped: %v", err)
		res.Skip("PostgreSQL: %v", err)
		return res, nil
	}
	if err != nil {
		return nil, err
	}
	defer schema.Drop()
	e := &env{o: o, sz: sz, schema: schema}
	if err := e.open(ctx); err != nil {
		return nil, err
	}
	defer e.close()
	o.Say("seeding %d DEKs in each of %d vaults", sz.deks(), keys)
	for i, v := range e.vaults {
		if err := seed(ctx, e.st, e.kek, v.key, fmt.Sprintf("v%d-t", i), sz.tenants, sz.perTenant); err != nil {
			return nil, err
		}
	}
	one, err := e.throughput(ctx, 1)
	if err != nil {
		return nil, fmt.Errorf("1 replica: %w", err)
	}
	three, err := e.throughput(ctx, many)
	if err != nil {
		return nil, fmt.Errorf("%d replicas: %w", many, err)
	}
	to, err := e.takeover(ctx)
	if err != nil {
		return nil, fmt.Errorf("takeover: %w", err)
	}
	report(res, sz, one, three, to)
	return res, nil
}

func setup(sz sizes) string {
	return fmt.Sprintf("%d Key Vault emulators, each its own vault with one RSA-2048 key and %d DEKs across %d tenants, "+
		"each throttled to %d operations per %v (fixed window, Retry-After), latency 2 ms ± 1 ms. One PostgreSQL "+
		"schema (CMKD_TEST_POSTGRES, or the local server). Each replica is a process of its own (the harness's "+
		"binary started again): a worker as `cmkd run` wires it, without event sources, with its own kek client "+
		"(VaultLimit %.0f/s), its own pgx pool and store on the shared schema; probe interval %v, lease TTL %v. "+
		"Throughput: all keys rotated, time from the first rotation until every DEK of every key is under its new "+
		"version, read from the store every %v; the replicas find the rotation by their scheduled checks. "+
		"Takeover: with %d replicas running, all keys rotated again; once every key still rewrapping has %.0f %% of "+
		"its DEKs moved, the replica holding the lease of the key with the most DEKs left is killed (SIGKILL: no lease "+
		"is released) and the harness times until another replica holds that lease and until that key's DEKs "+
		"move again.",
		keys, sz.deks(), sz.tenants, sz.limit, sz.window, sz.perSecond(), sz.probe, sz.ttl, pollEvery, many, sz.killAt*100)
}

func (e *env) open(ctx context.Context) (err error) {
	log := e.o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if e.vaults, err = startVaults(ctx, keys, log); err != nil {
		return err
	}
	e.kek, err = kek.New(kek.Config{
		Credential: kek.StaticToken("bench"), RootCAs: roots(e.vaults), DisableChallengeResourceVerification: true,
		Policy: kek.VaultPolicy{AllowLoopback: true}, Logger: log,
	})
	if err != nil {
		return err
	}
	// The harness migrates the schema; the replicas only check it.
	b, err := postgres.Open(ctx, postgres.Config{DSN: e.schema.URL, Schema: e.schema.Name})
	if err != nil {
		return err
	}
	if e.st, err = store.New(store.Config{Backend: b, KEK: e.kek, Logger: log}); err != nil {
		b.Close()
		return err
	}
	return nil
}

func (e *env) close() {
	if e.st != nil {
		e.st.Close()
	}
	closeVaults(e.vaults)
}

// startReplicas starts n replicas, named replica-1…, and waits until each
// is ready.
func (e *env) startReplicas(ctx context.Context, n int) ([]*process, error) {
	var ps []*process
	for i := range n {
		p, err := startReplica(ctx, e.o.Dir, replicaConfig{
			DSN: e.schema.URL, Schema: e.schema.Name, Instance: fmt.Sprintf("replica-%d", i+1),
			CAs: cas(e.vaults), VaultLimit: e.sz.perSecond(), ProbeInterval: e.sz.probe, LeaseTTL: e.sz.ttl,
		})
		if err != nil {
			stopAll(ps)
			return nil, err
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// stopAll stops the replicas still running, gracefully and all at once,
// and returns their failures.
func stopAll(ps []*process) error {
	var live []*process
	for _, p := range ps {
		if p.running() {
			p.term()
			live = append(live, p)
		}
	}
	var errs []error
	for _, p := range live {
		errs = append(errs, p.wait(15*time.Second))
	}
	return errors.Join(errs...)
}

// run is one rotation of every key rewrapped by a fleet of replicas.
type fleetRun struct {
	replicas  int
	done      []time.Duration // per key, from the rotation until all its DEKs moved
	throttled int64
	// holders counts, per replica, the keys whose lease it held when the
	// key's DEKs were first seen moving.
	holders map[string]int
}

func (f fleetRun) elapsed() time.Duration { return slices.Max(f.done) }

func (f fleetRun) rate(deksPerKey int) float64 {
	return float64(deksPerKey*len(f.done)) / f.elapsed().Seconds()
}

// throughput rotates every key with n replicas running and times the
// rewraps until every DEK is under its key's new version.
func (e *env) throughput(ctx context.Context, n int) (*fleetRun, error) {
	e.o.Say("%d replica(s): starting", n)
	ps, err := e.startReplicas(ctx, n)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	versions, err := rotate(ctx, e.vaults, e.sz.limit, e.sz.window)
	if err != nil {
		stopAll(ps)
		return nil, err
	}
	f := &fleetRun{replicas: n, done: make([]time.Duration, keys), holders: map[string]int{}}
	seen := make([]bool, keys)
	err = e.watch(ctx, ps, "rewraps", func() (bool, error) {
		moved, err := e.moved(ctx, versions)
		if err != nil {
			return false, err
		}
		for i, m := range moved {
			if m > 0 && !seen[i] {
				seen[i] = true
				if h, ok, err := e.holder(ctx, i, ps); err != nil {
					return false, err
				} else if ok {
					f.holders[h.instance]++
				}
			}
			if m == e.sz.deks() && f.done[i] == 0 {
				f.done[i] = time.Since(start)
				e.o.Say("%d replica(s): key %d done in %s", n, i+1, f.done[i].Round(100*time.Millisecond))
			}
		}
		return !slices.Contains(f.done, 0), nil
	})
	for _, v := range e.vaults {
		f.throttled += v.throttled()
	}
	if serr := stopAll(ps); err == nil {
		err = serr
	}
	return f, err
}

// moved is, per key, how many of its DEKs are under versions[key].
func (e *env) moved(ctx context.Context, versions []string) ([]int, error) {
	out := make([]int, keys)
	for i, v := range e.vaults {
		counts, err := e.st.VersionCounts(ctx, v.key)
		if err != nil {
			return nil, err
		}
		out[i] = counts[versions[i]]
	}
	return out, nil
}

// holder is the running replica holding key i's lease, if any.
func (e *env) holder(ctx context.Context, i int, ps []*process) (*process, bool, error) {
	l, ok, err := e.lease(ctx, i)
	if err != nil || !ok {
		return nil, false, err
	}
	for _, p := range ps {
		if p.holds(l.Holder) && p.running() {
			return p, true, nil
		}
	}
	return nil, false, nil
}

// lease is key i's lease, if one is held now.
func (e *env) lease(ctx context.Context, i int) (store.Lease, bool, error) {
	ls, err := e.st.Leases(ctx)
	if err != nil {
		return store.Lease{}, false, err
	}
	name := e.vaults[i].key.LeaseName()
	for _, l := range ls {
		if l.Name == name && l.Expires.After(time.Now()) {
			return l, true, nil
		}
	}
	return store.Lease{}, false, nil
}

// watch polls cond until it holds, fails, a replica ends on its own, or
// the phase's time is up.
func (e *env) watch(ctx context.Context, ps []*process, what string, cond func() (bool, error)) error {
	timeout := 4*e.sz.expected() + 2*e.sz.ttl + time.Minute
	deadline := time.Now().Add(timeout)
	t := time.NewTicker(pollEvery)
	defer t.Stop()
	for {
		ok, err := cond()
		switch {
		case err != nil:
			return fmt.Errorf("%s: %w", what, err)
		case ok:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%s: not done after %s", what, timeout)
		}
		for _, p := range ps {
			if !p.running() && !p.killed {
				return fmt.Errorf("%s: %s ended: %v: %s", what, p.instance, p.err, p.logTail())
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// takeoverRun is what the takeover phase measured.
type takeoverRun struct {
	key       int           // the key whose replica was killed
	victim    string        // that replica
	left      time.Duration // its lease's time left at the kill
	movedKill int           // the key's DEKs moved at the kill
	leaseGone time.Duration // kill → a survivor holds the lease
	resumed   time.Duration // kill → the key's DEKs move again
	all       time.Duration // kill → every key done
	verified  int           // the key's DEKs that unwrap to their KCV
	successor string
}

// takeover rotates every key with many replicas running, kills the
// replica holding the busiest key's lease mid-rewrap, and times the
// survivors' takeover.
func (e *env) takeover(ctx context.Context) (*takeoverRun, error) {
	e.o.Say("takeover: starting %d replicas", many)
	ps, err := e.startReplicas(ctx, many)
	if err != nil {
		return nil, err
	}
	defer stopAll(ps)
	versions, err := rotate(ctx, e.vaults, e.sz.limit, e.sz.window)
	if err != nil {
		return nil, err
	}
	total := e.sz.deks()
	var victim *process
	r := &takeoverRun{}
	err = e.watch(ctx, ps, "a rewrap under way", func() (bool, error) {
		moved, err := e.moved(ctx, versions)
		if err != nil {
			return false, err
		}
		// The busiest key: the most DEKs left. Every unfinished key must be
		// well into its rewrap, so the kill lands mid-rewrap.
		best := -1
		for i, m := range moved {
			if m == total {
				continue
			}
			if m < int(e.sz.killAt*float64(total)) {
				return false, nil
			}
			if best < 0 || m < moved[best] {
				best = i
			}
		}
		if best < 0 {
			return false, errors.New("every key finished before one was far enough along to kill its replica")
		}
		l, ok, err := e.lease(ctx, best)
		if err != nil || !ok {
			return false, err
		}
		for _, p := range ps {
			if p.holds(l.Holder) {
				victim, r.key, r.left = p, best, time.Until(l.Expires)
			}
		}
		return victim != nil, nil
	})
	if err != nil {
		return nil, err
	}
	e.o.Say("takeover: killing %s, which holds key %d's lease (%s left)", victim.instance, r.key+1, r.left.Round(time.Millisecond))
	r.victim = victim.instance
	victim.killed = true
	killed := time.Now()
	victim.kill()
	moved, err := e.moved(ctx, versions)
	if err != nil {
		return nil, err
	}
	r.movedKill = moved[r.key]
	err = e.watch(ctx, ps, "takeover", func() (bool, error) {
		if r.leaseGone == 0 {
			p, ok, err := e.holder(ctx, r.key, ps)
			if err != nil {
				return false, err
			}
			if ok {
				r.leaseGone, r.successor = time.Since(killed), p.instance
			}
		}
		moved, err := e.moved(ctx, versions)
		if err != nil {
			return false, err
		}
		if r.leaseGone != 0 && r.resumed == 0 && moved[r.key] > r.movedKill {
			r.resumed = time.Since(killed)
			e.o.Say("takeover: %s resumed key %d after %s", r.successor, r.key+1, r.resumed.Round(time.Millisecond))
		}
		for _, m := range moved {
			if m < total {
				return false, nil
			}
		}
		r.all = time.Since(killed)
		return r.resumed != 0, nil
	})
	if err != nil {
		return nil, err
	}
	if err := stopAll(ps); err != nil {
		return nil, err
	}
	r.verified, err = e.verify(ctx, r.key, versions[r.key])
	return r, err
}

// verify unwraps every DEK of key i in Key Vault, throttling lifted, and
// counts those under version whose plaintext matches their key check
// value: a rewrap cut short by a kill and resumed elsewhere must lose none.
func (e *env) verify(ctx context.Context, i int, version string) (int, error) {
	v := e.vaults[i]
	v.kv.SetThrottle(-1, 0, true)
	tenants, err := e.st.TenantsByKey(ctx, v.key)
	if err != nil {
		return 0, err
	}
	ok := 0
	for _, t := range tenants {
		deks, err := e.st.Backend().TenantDEKs(ctx, t.ID, "", 10*e.sz.perTenant)
		if err != nil {
			return 0, err
		}
		for _, d := range deks {
			if d.Version() != version {
				continue
			}
			k, err := e.kek.Unwrap(ctx, d.Current)
			if err != nil {
				return ok, fmt.Errorf("unwrap dek %s: %w", d.ID, err)
			}
			if bytes.Equal(store.KeyCheckValue(k), d.KCV) {
				ok++
			}
			clear(k)
		}
	}
	return ok, nil
}

func report(res *bench.Result, sz sizes, one, three *fleetRun, to *takeoverRun) {
	deks := sz.deks()
	res.Add(mTotal, float64(deks), "DEKs")
	res.Add("per-vault limit", sz.perSecond(), "calls/s")
	res.Add(mOne, one.rate(deks), "DEK/s")
	res.Add("1 replica: rotation → last key done", one.elapsed().Seconds(), "s")
	res.Add("1 replica: 429s", float64(one.throttled), "")
	res.Add(mMany, three.rate(deks), "DEK/s")
	res.Add("3 replicas: rotation → last key done", three.elapsed().Seconds(), "s")
	res.Add("3 replicas: 429s", float64(three.throttled), "")
	ratio := res.Ratio(mRatio, three.rate(deks), one.rate(deks))
	res.Ratio("1 replica: aggregate ÷ (3 × per-vault limit)", one.rate(deks), keys*sz.perSecond())
	res.Ratio("3 replicas: aggregate ÷ (3 × per-vault limit)", three.rate(deks), keys*sz.perSecond())

	res.Add("probe interval", sz.probe.Seconds(), "s")
	res.Add(mTTL, sz.ttl.Seconds(), "s")
	res.Add(mLeft, to.left.Seconds(), "s")
	res.Add(mLeaseGone, to.leaseGone.Seconds(), "s")
	res.Add(mResumed, to.resumed.Seconds(), "s")
	rt := res.Ratio(mResumeTTL, to.resumed.Seconds(), sz.ttl.Seconds())
	res.Add("takeover: kill → rewrap resumed − lease time left", (to.resumed - to.left).Seconds(), "s")
	res.Add("takeover: the key's DEKs moved before the kill", float64(to.movedKill), "DEKs")
	res.Add("takeover: kill → every key done", to.all.Seconds(), "s")
	res.Add(mVerified, float64(to.verified), "DEKs")

	bound := sz.ttl + sz.probe + time.Second
	res.Goal("a survivor resumes a dead replica's rewrap within lease TTL + probe interval + 1 s",
		to.resumed <= bound, fmt.Sprintf("%.2f s (%.2f× the %v TTL; bound %v)", to.resumed.Seconds(), rt, sz.ttl, bound),
		"the survivors' checks of the key, which find the lease held until it expires and come once per probe interval")
	res.Goal("no DEK lost: every DEK of the dead replica's key unwraps under the new version to its check value",
		to.verified == deks, fmt.Sprintf("%d of %d", to.verified, deks), "DEKs missing from the new version or unwrapping wrong")

	res.Note("Keys per replica, by the lease holder when each key's DEKs first moved: 1 replica %s; %d replicas %s. "+
		"Each vault has one key and a key is rewrapped by one replica at a time (its lease), so the per-vault limit "+
		"bounds each key's rewrap whichever replica runs it, and one replica already runs the three vaults' rewraps "+
		"in parallel: more replicas add availability, not throughput, until one replica's CPU or the keys outnumber "+
		"what one process rewraps at once. Measured: 3 replicas ran at %.2f× one replica's aggregate.",
		holders(one), many, holders(three), ratio)
	res.Note("Takeover: %s held key %d's lease, with %.1f s of its %v TTL left (the worker renews every TTL/3, so "+
		"between 2/3 TTL and TTL is left at any instant); %s held the lease %.2f s after the kill and moved the key's "+
		"DEKs again %.2f s after it. Kill → resumed is the lease's time left plus up to one probe interval (the "+
		"survivors' next check, which found the lease free) plus the check and the canary: expect between 2/3 TTL "+
		"and TTL + probe interval + a little. A survivor that found the key busy checks it again a probe interval "+
		"later, not when the lease expires: with cmkd's defaults (TTL %v, probe interval %v) a dead replica's "+
		"key waits up to about %v unless an event for the key arrives sooner.",
		to.victim, to.key+1, to.left.Seconds(), sz.ttl, to.successor, to.leaseGone.Seconds(), to.resumed.Seconds(),
		worker.DefaultLeaseTTL, worker.DefaultProbeInterval, worker.DefaultLeaseTTL+worker.DefaultProbeInterval)
}

func holders(f *fleetRun) string {
	var parts []string
	for h, n := range f.holders {
		parts = append(parts, fmt.Sprintf("%s %d", h, n))
	}
	slices.Sort(parts)
	if len(parts) == 0 {
		return "(not seen)"
	}
	return strings.Join(parts, ", ")
}
