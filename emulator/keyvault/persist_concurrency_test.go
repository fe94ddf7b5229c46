package keyvault

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// TestConcurrentMutationsLeaveTheNewestState: racing creates, rotations,
// updates, deletes and access changes leave a file that loads and holds
// exactly the vault in memory once they are all answered.
func TestConcurrentMutationsLeaveTheNewestState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.json")
	srv := start(t, Config{StateFile: path})
	c := newClient(t, srv)
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() { churn(t, c, fmt.Sprintf("k%d", i), i%2 == 0) })
	}
	wg.Go(func() {
		for range 10 {
			srv.Revoke()
			srv.Grant()
		}
	})
	wg.Wait()

	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeState(b)
	if err != nil {
		t.Fatalf("the file left by concurrent writes does not load: %v", err)
	}
	srv.vault.mu.Lock()
	want, _ := json.Marshal(srv.vault.snapshot(srv.revoked.Load()))
	srv.vault.mu.Unlock()
	if have, _ := json.Marshal(got.vault.snapshot(got.revoked)); string(have) != string(want) {
		t.Fatalf("the file is not the newest state:\nfile   %s\nmemory %s", have, want)
	}
	if len(got.vault.keys) != 3 || len(got.vault.deleted) != 3 || got.revoked {
		t.Fatalf("file holds %d keys, %d deleted, revoked %v; want 3, 3, false", len(got.vault.keys), len(got.vault.deleted), got.revoked)
	}
}

// churn creates, rotates and retags a key, and deletes it when asked. The
// access toggling makes some requests answer 403; those are repeated.
func churn(t *testing.T, c *azkeys.Client, name string, del bool) {
	ctx := t.Context()
	untilAllowed(t, func() error {
		_, err := c.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM)}, nil)
		return err
	})
	for i := range 3 {
		untilAllowed(t, func() error { _, err := c.RotateKey(ctx, name, nil); return err })
		tags := map[string]*string{"round": to.Ptr(fmt.Sprint(i))}
		untilAllowed(t, func() error {
			_, err := c.UpdateKey(ctx, name, "", azkeys.UpdateKeyParameters{Tags: tags}, nil)
			return err
		})
	}
	if del {
		untilAllowed(t, func() error { _, err := c.DeleteKey(ctx, name, nil); return err })
	}
}

// untilAllowed repeats op while access is revoked, for up to 10 seconds.
func untilAllowed(t *testing.T, op func() error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := op()
		var re *azcore.ResponseError
		if err == nil || !errors.As(err, &re) || re.StatusCode != http.StatusForbidden || time.Now().After(deadline) {
			if err != nil {
				t.Error(err)
			}
			return
		}
	}
}
