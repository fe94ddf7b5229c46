package schedule

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"fmt"
	"log/slog"
	"math/big"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"golang.org/x/sync/errgroup"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/worker"
)

// ProbeLoad is the probe-load benchmark: thousands of keys in one vault,
// each probed on its own schedule within the vault's probe budget, and a
// disabled key sealed within one effective interval while a rewrap in the
// same vault runs at full speed.
var ProbeLoad = bench.Scenario{Name: probeName, Title: probeTitle, Run: runProbeLoad}

const (
	probeName     = "probeload"
	probeTitle    = "Probe load: thousands of keys in one vault"
	probeInstance = "bench-probeload"
	// callsPerCheck is what a check of a key whose DEKs are under one
	// version costs: a GET of the key and an unwrap under that version.
	callsPerCheck = 2
)

// probeSizes are one run's dimensions.
type probeSizes struct {
	keys      int           // probed keys, one tenant and one DEK each
	interval  time.Duration // the worker's ProbeInterval
	limit     int           // the emulator's operations per window
	window    time.Duration
	disables  int           // keys disabled during the rewrap
	margin    time.Duration // how much longer than the disables' bound the rewrap lasts
	perTenant int           // DEKs per tenant of the rewrap key
	// ramped is how many DEKs the rewrap has moved when the keys are
	// disabled: a second's worth of the vault's limit, at full size.
	ramped int
}

func probeSizesFor(o bench.Options) probeSizes {
	return probeSizes{
		keys: bench.Pick(o, 2000, 20), interval: bench.Pick(o, time.Minute, time.Second),
		limit: 4000, window: 10 * time.Second, disables: bench.Pick(o, 16, 4),
		margin: bench.Pick(o, 30*time.Second, time.Second), perTenant: bench.Pick(o, 500, 100),
		ramped: bench.Pick(o, 400, 50),
	}
}

// perSecond is the vault's limit; kek's VaultLimit is left at its default,
// which is the same figure.
func (s probeSizes) perSecond() float64 { return float64(s.limit) / s.window.Seconds() }

// watched is every key the worker watches: the probed keys and the key
// that is rewrapped later.
func (s probeSizes) watched() int { return s.keys + 1 }

// budget is the probe calls per second the worker may spend on the vault.
func (s probeSizes) budget() float64 { return worker.DefaultProbeBudget * s.perSecond() }

// expected is the effective interval the budget demands: every key's
// check once per interval at no more than the budget.
func (s probeSizes) expected() time.Duration {
	need := time.Duration(float64(callsPerCheck*s.watched()) / s.budget() * float64(time.Second))
	return max(s.interval, need)
}

// bound is how long after a disable its tenant should be sealed at the
// latest: the key's next check comes within one effective interval, give
// or take its jitter.
func bound(interval time.Duration) time.Duration {
	return time.Duration(float64(interval) * (1 + worker.DefaultProbeJitter))
}

// rewrapDEKs is sized so that the rewrap, at the vault's limit less the
// probe budget, outlasts the disables' bound by margin.
func (s probeSizes) rewrapDEKs() int {
	d := bound(s.expected()) + s.margin
	n := int((1 - worker.DefaultProbeBudget) * s.perSecond() * d.Seconds())
	return (n + s.perTenant - 1) / s.perTenant * s.perTenant
}

func runProbeLoad(ctx context.Context, o bench.Options) (*bench.Result, error) {
	sz := probeSizesFor(o)
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	sealed := newSeals()
	env, err := bench.NewEnv(ctx, bench.EnvConfig{Dir: o.Dir, Logger: newTap(log, sealed.add, msgTenantSealed)})
	if err != nil {
		return nil, err
	}
	defer env.Close()
	o.Say("importing %d keys, one tenant and DEK on each", sz.keys)
	seed := &seeder{st: env.Store, kc: env.KEK}
	keys, err := importKeys(ctx, env, seed, sz.keys)
	if err != nil {
		return nil, err
	}
	o.Say("seeding %d DEKs on the key to rewrap", sz.rewrapDEKs())
	if err := seed.tenants(ctx, env.Key, "t", sz.rewrapDEKs()/sz.perTenant, sz.perTenant); err != nil {
		return nil, err
	}

	throttled(env.KV, sz.limit, sz.window)
	env.KV.ResetCalls()
	start := time.Now()
	w, err := startWorker(ctx, env.Store, env.KEK, probeInstance, sz.interval, log, log)
	if err != nil {
		return nil, err
	}
	defer w.stop()
	pr, err := probePhase(ctx, o, env, w, sz, keys, start)
	if err != nil {
		return nil, err
	}
	dr, err := disablePhase(ctx, o, env, w, sz, keys, pr.interval, sealed)
	if err != nil {
		return nil, err
	}
	return reportProbe(sz, pr, dr), nil
}

// importKeys creates n RSA-2048 keys p-0000… in env's vault, each with
// one tenant of the same name and one DEK. The keys are imported from one
// key pair made here, because the emulator's RSA key generation would cost
// minutes of CPU for setup; each is still its own key, with its own
// version, attributes and schedule.
func importKeys(ctx context.Context, env *bench.Env, seed *seeder, n int) ([]cmkd.KeyID, error) {
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	jwk := &azkeys.JSONWebKey{
		Kty: to.Ptr(azkeys.KeyTypeRSA), N: priv.N.Bytes(), E: big.NewInt(int64(priv.E)).Bytes(),
		D: priv.D.Bytes(), P: priv.Primes[0].Bytes(), Q: priv.Primes[1].Bytes(),
		DP: priv.Precomputed.Dp.Bytes(), DQ: priv.Precomputed.Dq.Bytes(), QI: priv.Precomputed.Qinv.Bytes(),
	}
	keys := make([]cmkd.KeyID, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error {
			name := fmt.Sprintf("p-%04d", i)
			resp, err := env.AZ.ImportKey(gctx, name, azkeys.ImportKeyParameters{Key: jwk}, nil)
			if err != nil {
				return fmt.Errorf("import key %s: %w", name, err)
			}
			id, err := cmkd.ParseKeyID(string(*resp.Key.KID))
			if err != nil {
				return err
			}
			keys[i] = id.Versionless()
			return seed.tenant(gctx, name, keys[i], 1)
		})
	}
	return keys, g.Wait()
}

// probeRun is what the probe-only phase measured.
type probeRun struct {
	start     time.Time     // the worker's start
	interval  time.Duration // effective, as the worker reports it
	stretched bool          // the worker reports the budget exceeded
	// The phase is two effective intervals from the worker's start; first
	// is the first of them, when every key's first check is spread.
	elapsed, first    time.Duration
	calls, firstCalls int64 // Key Vault operations answered
	throttled         int64
	probes            probeTimes
	checks            map[string]float64 // by outcome
	cpu               cpuUse
}

// probeTimes is what the worker's per-key metric said about each key's
// probes over a phase: the metric's value is the start of the key's last
// probe Key Vault answered, so every probe seen is timed exactly (a check
// that found Key Vault unreachable or throttled is not a probe).
type probeTimes struct {
	first map[string]time.Time // each key's first probe
	last  map[string]time.Time
	// maxGap is the longest time between two probes of a key, counting
	// the time since its last probe at the end of the phase.
	maxGap    time.Duration
	maxGapKey string
}

func newProbeTimes() probeTimes {
	return probeTimes{first: map[string]time.Time{}, last: map[string]time.Time{}}
}

func (p *probeTimes) observe(key string, at time.Time) {
	if _, ok := p.first[key]; !ok {
		p.first[key] = at
	}
	if prev, ok := p.last[key]; ok && at.After(prev) {
		if gap := at.Sub(prev); gap > p.maxGap {
			p.maxGap, p.maxGapKey = gap, key
		}
	}
	p.last[key] = at
}

// close counts each key's open gap at end.
func (p *probeTimes) close(end time.Time) {
	for key, at := range p.last {
		if gap := end.Sub(at); gap > p.maxGap {
			p.maxGap, p.maxGapKey = gap, key
		}
	}
}

// firstWithin counts the keys first probed no later than d after start.
func (p *probeTimes) firstWithin(start time.Time, d time.Duration) int {
	n := 0
	for _, at := range p.first {
		if at.Sub(start) <= d {
			n++
		}
	}
	return n
}

// probePhase lets the worker probe every key on its own for two effective
// intervals, with nothing else running, and counts what it asked of the
// vault: the first interval spreads every key's first check, the second
// is the schedule as it runs from then on. start is the worker's start.
func probePhase(ctx context.Context, o bench.Options, env *bench.Env, w *runningWorker, sz probeSizes,
	keys []cmkd.KeyID, start time.Time) (probeRun, error) {
	pr := probeRun{start: start}
	vault := map[string]string{"vault": env.KV.URL()}
	// The interval is set as the worker counts the keys in; it is final
	// once it reads the same twice.
	var last float64
	err := waitFor(ctx, time.Minute, "the worker's effective probe interval", func() (bool, error) {
		v, ok, err := w.value("cmkd_vault_probe_interval_seconds", vault)
		settled := ok && v == last
		last = v
		return settled, err
	})
	if err != nil {
		return pr, err
	}
	pr.interval = time.Duration(last * float64(time.Second))
	stretched, _, err := w.value("cmkd_vault_probe_budget_exceeded", vault)
	if err != nil {
		return pr, err
	}
	pr.stretched = stretched == 1
	o.Say("%d keys watched; effective probe interval %s (configured %s); probing alone for two intervals",
		sz.watched(), pr.interval.Round(10*time.Millisecond), sz.interval)

	cpu0 := sampleCPU()
	checks0, err := w.checks()
	if err != nil {
		return pr, err
	}
	pr.probes = newProbeTimes()
	firstEnd, end := start.Add(pr.interval), start.Add(2*pr.interval)
	every := min(max(pr.interval/50, 20*time.Millisecond), 2*time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for now := time.Now(); now.Before(end); now = time.Now() {
		if pr.firstCalls == 0 && !now.Before(firstEnd) {
			pr.first, pr.firstCalls = now.Sub(start), env.Calls()
		}
		if err := sampleProbes(w, &pr.probes); err != nil {
			return pr, err
		}
		select {
		case <-t.C:
		case <-w.exited:
			return pr, w.errStopped()
		case <-ctx.Done():
			return pr, ctx.Err()
		}
	}
	pr.elapsed, pr.calls, pr.throttled = time.Since(start), env.Calls(), env.Throttled()
	pr.cpu = cpu0.until(sampleCPU())
	checks, err := w.checks()
	if err != nil {
		return pr, err
	}
	pr.checks = minus(checks, checks0)
	if err := sampleProbes(w, &pr.probes); err != nil {
		return pr, err
	}
	pr.probes.close(time.Now())
	return pr, nil
}

// sampleProbes reads every key's last probe from the worker's metrics.
func sampleProbes(w *runningWorker, p *probeTimes) error {
	ss, err := w.gather("cmkd_key_last_probe_timestamp_seconds")
	if err != nil {
		return err
	}
	for _, s := range ss {
		if s.value > 0 {
			sec, frac := int64(s.value), s.value-float64(int64(s.value))
			p.observe(s.labels["key"], time.Unix(sec, int64(frac*1e9)))
		}
	}
	return nil
}
