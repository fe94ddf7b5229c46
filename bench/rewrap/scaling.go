package rewrap

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"time"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/store"
)

// Scaling is scenario 6: scenario 1 at growing DEK counts with the throttle
// off, so time should grow linearly and memory stay flat.
var Scaling = bench.Scenario{Name: scalingName, Title: scalingTitle, Run: runScaling}

const (
	scalingName  = "scaling"
	scalingTitle = "Scaling curve (throttle off)"
	perTenant    = 100
)

// point is one size of the curve.
type point struct {
	DEKs     int
	Run      cmkdRun
	Capacity float64 // emulator unwraps per second, bare azkeys, 32 goroutines
	PeakRSS  int64
}

func runScaling(ctx context.Context, o bench.Options) (*bench.Result, error) {
	sizes := bench.Pick(o, []int{1000, 10000, 100000}, []int{100, 300})
	res := &bench.Result{Scenario: scalingName, Title: scalingTitle, Setup: fmt.Sprintf(
		"Scenario 1 (RSA-2048, %d DEKs per tenant) at %v DEKs, each size in a fresh store, throttle and latency off: "+
			"the emulator's own capacity is the limit. Capacity baseline, same run: bare azkeys UnwrapKey "+
			"with 32 goroutines. Peak RSS is the process's (kernel VmHWM, reset after seeding).",
		perTenant, sizes)}
	var pts []point
	for _, n := range sizes {
		p, err := scalePoint(ctx, o, n)
		if err != nil {
			return nil, err
		}
		pts = append(pts, p)
	}
	reportScaling(res, pts)
	return res, nil
}

func scalePoint(ctx context.Context, o bench.Options, n int) (point, error) {
	o.Dir = filepath.Join(o.Dir, fmt.Sprint(n))
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return point{}, err
	}
	env, seeded, v2, err := prepared(ctx, o, bench.EnvConfig{KeyKind: bench.RSA}, n/perTenant, perTenant)
	if err != nil {
		return point{}, err
	}
	defer env.Close()
	env.KV.SetThrottle(-1, time.Second, false)
	capacity, err := unwrapCapacity(ctx, env, seeded.DEKs[:min(len(seeded.DEKs), 2000)])
	if err != nil {
		return point{}, err
	}
	seeded = bench.Seeded{} // what cmkd holds must show, not the seed list
	runtime.GC()
	debug.FreeOSMemory()
	bench.ResetPeakRSS()
	o.Say("cmkd: rewrap %d DEKs", n)
	c, err := cmkdRewrap(ctx, o, env, v2)
	if err != nil {
		return point{}, err
	}
	return point{DEKs: n, Run: c, Capacity: capacity, PeakRSS: bench.PeakRSS()}, nil
}

// unwrapCapacity is how many unwraps per second the emulator serves to a
// bare azkeys client with 32 goroutines.
func unwrapCapacity(ctx context.Context, env *bench.Env, deks []store.DEK) (float64, error) {
	h, err := handUnwrap(ctx, env, deks, 32)
	if err != nil {
		return 0, err
	}
	return h.rate(), nil
}

func reportScaling(res *bench.Result, pts []point) {
	first := pts[0]
	perDEK := func(p point) float64 { return p.Run.Elapsed.Seconds() / float64(p.DEKs) }
	for _, p := range pts {
		k := fmt.Sprintf("%d DEKs: ", p.DEKs)
		res.Add(k+"time", p.Run.Elapsed.Seconds(), "s")
		res.Add(k+"DEKs per second", p.Run.rate(), "DEK/s")
		res.Add(k+"emulator unwrap capacity (baseline)", p.Capacity, "unwrap/s")
		res.Ratio(k+"cmkd ÷ emulator capacity", p.Run.rate(), p.Capacity)
		res.Ratio(k+"time per DEK ÷ smallest size's", perDEK(p), perDEK(first))
		res.Add(k+"peak RSS", float64(p.PeakRSS)/(1<<20), "MiB")
		res.Ratio(k+"peak RSS ÷ smallest size's", float64(p.PeakRSS), float64(first.PeakRSS))
		res.Add(k+"failed DEKs", float64(p.Run.Failed), "")
	}
	last := pts[len(pts)-1]
	lin := perDEK(last) / perDEK(first)
	mem := float64(last.PeakRSS) / float64(first.PeakRSS)
	res.Goal("time grows linearly (time per DEK at the largest size within 1.25× the smallest's)", lin <= 1.25,
		fmt.Sprintf("%.2f×", lin), "the store's per-batch queries grow with the table")
	res.Goal("memory stays flat (peak RSS at the largest size within 1.5× the smallest's)", mem <= 1.5,
		fmt.Sprintf("%.2f×", mem), "memory held per DEK")
}
