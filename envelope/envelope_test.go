package envelope_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/config"
	"github.com/cmkd-io/cmkd/envelope"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

func newDeployment(t *testing.T) *deployment {
	t.Helper()
	d, err := deploy()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.close)
	return d
}

// otherProcess opens the deployment's store as another process (cmkd run,
// a cmkd command) does: its own Key Vault client and store over the file.
func (d *deployment) otherProcess(t *testing.T) (*store.Store, *kek.Client) {
	t.Helper()
	k, err := config.OpenKEK(d.cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := config.OpenStore(t.Context(), d.cfg, k, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, k
}

// TestCiphertextOutlivesRotation: a ciphertext made before the tenant's key
// rotates decrypts after another process rewrapped the tenant's data keys
// to the new version and the old version was disabled, with the same
// Client, never reopened: the ciphertext is never rewritten, and the Client
// reads the new wrapping from the store.
func TestCiphertextOutlivesRotation(t *testing.T) {
	d := newDeployment(t)
	cfg := *d.cfg
	cfg.Store.CacheTTL = time.Nanosecond // every Decrypt unwraps: the cache cannot hide a stale wrapping
	ctx := t.Context()
	env, err := envelope.Open(ctx, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	aad := []byte("orders/1/card")
	ct, err := env.Encrypt(ctx, "acme", []byte("4111 1111 1111 1111"), aad)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Put(ctx, "acme", "orders/1", []byte("paid")); err != nil {
		t.Fatal(err)
	}

	st, k := d.otherProcess(t)
	info, err := k.RotateKey(ctx, d.key)
	if err != nil {
		t.Fatal(err)
	}
	version := info.KID.Version
	deks, err := st.ListDEKsNotAt(ctx, d.key, version, "", 100)
	if err != nil || len(deks) == 0 {
		t.Fatalf("data keys to rewrap: %d, %v", len(deks), err)
	}
	old := deks[0].Current.KID
	if version == "" || version == old.Version {
		t.Fatalf("rotation made version %q; the old one is %q", version, old.Version)
	}
	for _, dek := range deks {
		if _, err := st.RewrapDEK(ctx, dek, info.KID, true); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CompleteRewrap(ctx, d.key, version); err != nil {
		t.Fatal(err)
	}
	if _, err := k.SetEnabled(ctx, old, false); err != nil {
		t.Fatal(err)
	}

	got, err := env.Decrypt(ctx, "acme", ct, aad)
	if err != nil || string(got) != "4111 1111 1111 1111" {
		t.Fatalf("Decrypt after the rewrap = %q, %v", got, err)
	}
	if v, err := env.Get(ctx, "acme", "orders/1"); err != nil || string(v) != "paid" {
		t.Fatalf("Get after the rewrap = %q, %v", v, err)
	}
}

// TestSealedByAnotherProcess: a seal another process writes (cmkd run, when
// the key is revoked) stops the Client's calls for that tenant with
// ErrSealed and a SealedError saying why, although the Client holds the
// tenant's data key in memory: record calls at once, envelope calls at the
// latest store.state_recheck later (at once when it is negative).
func TestSealedByAnotherProcess(t *testing.T) {
	for _, recheck := range []time.Duration{0, -1} {
		t.Run(fmt.Sprint("state_recheck=", recheck), func(t *testing.T) { sealedByAnotherProcess(t, recheck) })
	}
}

func sealedByAnotherProcess(t *testing.T, recheck time.Duration) {
	d := newDeployment(t)
	ctx := t.Context()
	cfg := *d.cfg
	cfg.Store.StateRecheck = recheck
	env, err := envelope.Open(ctx, &cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ct, err := env.Encrypt(ctx, "acme", []byte("x"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Put(ctx, "acme", "k", []byte("v")); err != nil {
		t.Fatal(err)
	}
	st, _ := d.otherProcess(t)
	if err := st.Seal(ctx, "acme", "key disabled", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if recheck == 0 {
		// The default window: no envelope call after it may succeed.
		time.Sleep(store.DefaultStateRecheck)
	}
	calls := map[string]func() error{
		"Encrypt": func() error { _, err := env.Encrypt(ctx, "acme", []byte("x"), nil); return err },
		"Decrypt": func() error { _, err := env.Decrypt(ctx, "acme", ct, nil); return err },
		"Put":     func() error { return env.Put(ctx, "acme", "k", []byte("w")) },
		"Get":     func() error { _, err := env.Get(ctx, "acme", "k"); return err },
	}
	for name, call := range calls {
		err := call()
		var se *envelope.SealedError
		if !errors.Is(err, envelope.ErrSealed) || !errors.As(err, &se) || se.Tenant != "acme" || se.Reason != "key disabled" {
			t.Errorf("%s on a sealed tenant: %v, want ErrSealed with tenant acme and the reason", name, err)
		}
	}
}

// TestOpenRefusesInvalidConfig: Open names the wrong field, and leaves the
// caller's config as it was.
func TestOpenRefusesInvalidConfig(t *testing.T) {
	cfg := &config.Config{Store: config.StoreConfig{Driver: "mysql", DSN: "x"}}
	_, err := envelope.Open(t.Context(), cfg)
	if err == nil || !strings.Contains(err.Error(), "store.driver") {
		t.Fatalf("Open with driver mysql: %v, want an error naming store.driver", err)
	}
	if cfg.KeyVault.Credential != "" || cfg.Instance != "" {
		t.Fatalf("Open changed the caller's config: %+v", cfg)
	}
	if _, err := envelope.OpenFile(t.Context(), "/nonexistent/cmkd.yaml"); err == nil {
		t.Fatal("OpenFile of a missing file: no error")
	}
}

// TestDestroyedByAnotherProcess: once `cmkd tenant destroy` (another
// process) returns, no envelope call of a Client that holds the tenant's
// data key in memory succeeds any more — not even one made at once, with
// the DEK confirmed by the database a moment before. A long
// state_recheck makes a missing wait show on every run.
func TestDestroyedByAnotherProcess(t *testing.T) {
	d := newDeployment(t)
	ctx := t.Context()
	d.cfg.Store.StateRecheck = 2 * time.Second // both processes' setting, as one config file gives
	env, err := envelope.Open(ctx, d.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	ct, err := env.Encrypt(ctx, "acme", []byte("card 4111"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := env.Decrypt(ctx, "acme", ct, nil); err != nil {
		t.Fatal(err)
	}
	st, _ := d.otherProcess(t)
	if err := st.DestroyTenant(ctx, "acme", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if p, err := env.Decrypt(ctx, "acme", ct, nil); !errors.Is(err, envelope.ErrUnknownTenant) {
		t.Fatalf("Decrypt right after another process destroyed the tenant: %q, %v; want ErrUnknownTenant", p, err)
	}
	if _, err := env.Encrypt(ctx, "acme", []byte("x"), nil); !errors.Is(err, envelope.ErrUnknownTenant) {
		t.Fatalf("Encrypt right after another process destroyed the tenant: %v; want ErrUnknownTenant", err)
	}
}
