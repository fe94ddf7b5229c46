package worker

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/handlers"
)

// reconcileLoop probes every key in use at once and then every
// ProbeInterval, because Key Vault never says when a key is disabled,
// deleted or access to it is lost.
func (w *Worker) reconcileLoop(ctx context.Context) error {
	t := time.NewTicker(w.cfg.ProbeInterval)
	defer t.Stop()
	for {
		w.reconcileAll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// reconcileAll reconciles every key in use, in parallel up to Concurrency.
func (w *Worker) reconcileAll(ctx context.Context) {
	keys, err := w.keysInUse(ctx, "")
	if err != nil {
		if ctx.Err() == nil {
			w.log.Error("list keys in use", slog.Any("err", err))
		}
		return
	}
	// Ready once the store answers and every key's first probe is under
	// way: a long rewrap must not keep the replica out of service.
	w.ready.Store(true)
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := w.Reconcile(ctx, handlers.Request{Key: k, Cause: "reconcile"})
			if err != nil && !errors.Is(err, ErrBusy) && ctx.Err() == nil {
				w.log.Error("reconcile", slog.String("key", k.String()), slog.Any("err", err))
			}
		}()
	}
	wg.Wait()
}

// keysInUse lists the distinct keys of all tenants, or of those whose key
// lives in vault when vault is not empty, and updates the tenant gauge.
func (w *Worker) keysInUse(ctx context.Context, vault string) ([]cmkd.KeyID, error) {
	tenants, err := w.store.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	if vault == "" {
		w.metrics.countTenants(tenants)
	}
	seen := map[cmkd.KeyID]bool{}
	var keys []cmkd.KeyID
	for _, t := range tenants {
		if (vault == "" || t.Key.Vault == vault) && !seen[t.Key] {
			seen[t.Key] = true
			keys = append(keys, t.Key)
		}
	}
	slices.SortFunc(keys, func(a, b cmkd.KeyID) int { return strings.Compare(a.String(), b.String()) })
	return keys, nil
}
