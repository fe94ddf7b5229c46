package sqlite_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// Swaps from many goroutines are committed in groups, yet each answers for
// itself: every DEK swapped once moves, of many racing swaps of one DEK
// exactly one wins and the rest lose with ErrCASConflict, and a swap of a
// DEK that does not exist says ErrNotFound.
func TestConcurrentSwapsEachAnswerForThemselves(t *testing.T) {
	b := open(t, filepath.Join(t.TempDir(), "cmkd.db"))
	defer b.Close()
	ctx := t.Context()
	const v1, v2 = "v1", "v2"
	key := cmkd.MustParseKeyID("https://v.vault.azure.net/keys/k")
	if err := b.AddTenant(ctx, store.Tenant{ID: "t", Key: key, State: store.StateActive, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	const n = 64
	wrapped := func(v string) cmkd.Wrapped {
		return cmkd.Wrapped{KID: key.At(v), Alg: "RSA-OAEP-256", Value: []byte(v)}
	}
	for i := range n + 1 {
		d := store.DEK{ID: fmt.Sprintf("d%02d", i), Tenant: "t", Key: key, Current: wrapped(v1), KCV: []byte("12345678"), CreatedAt: time.Now()}
		if err := b.InsertDEK(ctx, store.OneLayer(d)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 2*n+1)
	for i := range n { // d00…d63 once each; d64 n times
		wg.Go(func() { errs[i] = b.CompareAndSwapWrapping(ctx, fmt.Sprintf("d%02d", i), wrapped(v1).KID, wrapped(v2)) })
		wg.Go(func() { errs[n+i] = b.CompareAndSwapWrapping(ctx, "d64", wrapped(v1).KID, wrapped(v2)) })
	}
	wg.Go(func() { errs[2*n] = b.CompareAndSwapWrapping(ctx, "nope", wrapped(v1).KID, wrapped(v2)) })
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("swap of d%02d: %v", i, errs[i])
		}
	}
	won := 0
	for _, err := range errs[n : 2*n] {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, store.ErrCASConflict):
			t.Fatalf("racing swap of d64: %v, want nil or ErrCASConflict", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d racing swaps of d64 won, want exactly 1", won)
	}
	if !errors.Is(errs[2*n], store.ErrNotFound) {
		t.Fatalf("swap of a missing dek: %v, want ErrNotFound", errs[2*n])
	}
	counts, err := b.VersionCounts(ctx, key)
	if err != nil || counts[v2] != n+1 || counts[v1] != 0 {
		t.Fatalf("versions after the swaps: %v, %v", counts, err)
	}
}
