package rewrap

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/store"
)

// handRun is what a hand-written azkeys rewrap did.
type handRun struct {
	DEKs, Failed int
	Elapsed      time.Duration
	Throttled    int64 // 429s the vault answered
}

func (h handRun) rate() float64 { return float64(h.DEKs-h.Failed) / h.Elapsed.Seconds() }

// handRewrap is the baseline: what a user would write with azkeys — for
// each DEK UnwrapKey under its version, then WrapKey under the new one —
// with workers goroutines and azkeys' default retry policy (which honours
// Retry-After), no limiter. The results are thrown away: the store is not
// touched, so cmkd later rewraps the same DEKs.
func handRewrap(ctx context.Context, env *bench.Env, deks []store.DEK, newVersion string, workers int) (handRun, error) {
	az, err := env.NewAzkeys(policy.RetryOptions{})
	if err != nil {
		return handRun{}, err
	}
	env.KV.ResetCalls()
	start := time.Now()
	failed := fanOut(workers, len(deks), func(i int) error { return handOne(ctx, az, deks[i], newVersion) })
	return handRun{DEKs: len(deks), Failed: failed, Elapsed: time.Since(start), Throttled: env.Throttled()}, ctx.Err()
}

// fanOut runs do(0…n-1) on workers goroutines and counts the failures.
func fanOut(workers, n int, do func(i int) error) int {
	var next, failed atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if do(i) != nil {
					failed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	return int(failed.Load())
}

func handOne(ctx context.Context, az *azkeys.Client, d store.DEK, newVersion string) error {
	id := d.Current.KID
	alg := azkeys.EncryptionAlgorithm(d.Current.Alg)
	un, err := az.UnwrapKey(ctx, id.Name, id.Version, azkeys.KeyOperationParameters{Algorithm: &alg, Value: d.Current.Value}, nil)
	if err != nil {
		return err
	}
	defer clear(un.Result)
	_, err = az.WrapKey(ctx, id.Name, newVersion, azkeys.KeyOperationParameters{Algorithm: &alg, Value: un.Result}, nil)
	return err
}

// handUnwrap unwraps deks with bare azkeys and workers goroutines.
func handUnwrap(ctx context.Context, env *bench.Env, deks []store.DEK, workers int) (handRun, error) {
	az, err := env.NewAzkeys(policy.RetryOptions{})
	if err != nil {
		return handRun{}, err
	}
	start := time.Now()
	failed := fanOut(workers, len(deks), func(i int) error {
		w := deks[i].Current
		id := w.KID
		alg := azkeys.EncryptionAlgorithm(w.Alg)
		r, err := az.UnwrapKey(ctx, id.Name, id.Version, azkeys.KeyOperationParameters{Algorithm: &alg, Value: w.Value}, nil)
		clear(r.Result)
		return err
	})
	return handRun{DEKs: len(deks), Failed: failed, Elapsed: time.Since(start)}, ctx.Err()
}
