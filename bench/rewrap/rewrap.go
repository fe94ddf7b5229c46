// Package rewrap benchmarks cmkd's bulk rewrap after a key rotation: at Key
// Vault's software-key throttle, at Managed HSM–class limits, and as DEK
// counts grow, each against hand-written azkeys baselines in the same run.
package rewrap

import (
	"context"
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/handlers"
)

// Key Vault's published limit for RSA-2048 software-key operations is
// 4,000 per 10 s per vault; the emulator enforces it as a fixed window.
const (
	kvLimit  = 4000
	kvWindow = 10 * time.Second
)

// cmkdRun is what one cmkd rewrap did.
type cmkdRun struct {
	Stats     handlers.RewrapStats
	Elapsed   time.Duration
	CPU       time.Duration // process CPU (cmkd and the in-process emulator)
	Calls     int64         // key operations Key Vault answered
	Throttled int64
	Failed    int // DEKs not on the new version afterwards
}

func (c cmkdRun) rate() float64 { return float64(c.Stats.Rewrapped) / c.Elapsed.Seconds() }

// cmkdRewrap runs one Reconcile of the key, as the worker does after a
// KeyNewVersionCreated event, and checks that every DEK moved.
func cmkdRewrap(ctx context.Context, o bench.Options, env *bench.Env, newVersion string) (cmkdRun, error) {
	r, err := handlers.New(handlers.Config{Store: env.Store, KEK: env.KEK, Logger: o.Logger})
	if err != nil {
		return cmkdRun{}, err
	}
	env.KV.ResetCalls()
	cpu0, start := bench.CPUTime(), time.Now()
	last := time.Now()
	res, err := r.Reconcile(ctx, handlers.Request{Key: env.Key, Progress: func(done, total int) {
		if time.Since(last) >= 5*time.Second {
			last = time.Now()
			o.Say("cmkd: %d of %d DEKs", done, total)
		}
	}})
	run := cmkdRun{Elapsed: time.Since(start), CPU: bench.CPUTime() - cpu0, Calls: env.Calls(), Throttled: env.Throttled()}
	if err != nil {
		return run, fmt.Errorf("cmkd rewrap: %w", err)
	}
	if res.Rewrap == nil {
		return run, fmt.Errorf("cmkd rewrap: reconcile did not rewrap (outcome %s)", res.Outcome)
	}
	run.Stats = *res.Rewrap
	counts, err := env.Store.VersionCounts(ctx, env.Key)
	if err != nil {
		return run, err
	}
	for v, n := range counts {
		if v != newVersion {
			run.Failed += n
		}
	}
	return run, nil
}

// throttled sets Key Vault's limit and the scenario's latency; the window
// restarts, so every phase starts with a fresh budget.
func throttled(env *bench.Env, limit int, window time.Duration) {
	env.KV.SetThrottle(limit, window, true)
	env.KV.SetFaults(keyvault.Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond})
}

// prepared seeds tenants×perTenant DEKs on a new Env of cfg (its Dir and
// Logger are o's) and rotates the key.
func prepared(ctx context.Context, o bench.Options, cfg bench.EnvConfig, tenants, perTenant int) (*bench.Env, bench.Seeded, string, error) {
	cfg.Dir, cfg.Logger = o.Dir, o.Logger
	env, err := bench.NewEnv(ctx, cfg)
	if err != nil {
		return nil, bench.Seeded{}, "", err
	}
	o.Say("seeding %d DEKs across %d tenants", tenants*perTenant, tenants)
	seeded, err := env.Seed(ctx, tenants, perTenant, nil)
	if err != nil {
		env.Close()
		return nil, seeded, "", err
	}
	v, err := env.Rotate(ctx)
	if err != nil {
		env.Close()
		return nil, seeded, "", err
	}
	return env, seeded, v, nil
}
