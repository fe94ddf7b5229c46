package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// Every key is watched on its own: a slow or hung vault, or a long rewrap,
// never delays another key's seal, and a key is still probed while its own
// rewrap runs. The probe interval is one second, so "within probe interval
// + 1 s" is two seconds from the disable.

const scheduleInterval = time.Second

// remote drives emulated vault i of a dev system.
func (d *devProc) remote(i int) keyvault.Remote {
	d.t.Helper()
	return keyvault.Remote{URL: d.cfg.Dev.Vaults[i], Token: d.cfg.KeyVault.Token,
		HTTP: trusting(d.t, d.cfg.KeyVault.CAFile)}
}

// seedDEKs gives tenant n more DEKs under key, wrapped like cmkd wraps them
// but written straight to the store: setup, so that 10,000 DEKs take
// seconds instead of a Key Vault round trip each.
func seedDEKs(t *testing.T, st *store.Store, k *kek.Client, tenant string, key cmkd.KeyID, n int) {
	t.Helper()
	tn, err := st.Tenant(t.Context(), tenant)
	if err != nil || len(tn.Layers()) != 1 {
		t.Fatalf("seed deks: tenant %s must have one layer: %+v, %v", tenant, tn, err)
	}
	for range n {
		dek := make([]byte, store.DEKSize)
		_, _ = rand.Read(dek)
		id := make([]byte, 16)
		_, _ = rand.Read(id)
		d := store.DEK{ID: hex.EncodeToString(id), Tenant: tenant, Layer: tn.LayerOf(key), Key: key,
			KCV: store.KeyCheckValue(dek), CreatedAt: time.Now()}
		var err error
		if d.Current, err = k.Wrap(t.Context(), key, dek); err != nil {
			t.Fatal(err)
		}
		clear(dek)
		if err := st.Backend().InsertDEK(t.Context(), store.OneLayer(d)); err != nil {
			t.Fatal(err)
		}
	}
}

// bigKey makes key "big" in vault 0 and tenant "bigco" on it with n DEKs,
// records of them holding a record each; it returns the records' values.
func bigKey(t *testing.T, d *devProc, n, records int) (map[string]string, cmkd.KeyID) {
	t.Helper()
	d.must("", "vault", "create-key", "big", "--vault", d.cfg.Dev.Vaults[0])
	big := cmkd.MustParseKeyID(d.cfg.Dev.Vaults[0] + "/keys/big")
	st, k := openTestStoreKEK(t, d, 1) // a new DEK for every record
	if _, err := st.AddTenant(t.Context(), "bigco", big); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range records {
		key, v := fmt.Sprintf("r%03d", i), fmt.Sprintf("bigco record %d", i)
		if err := st.Put(t.Context(), "bigco", key, []byte(v)); err != nil {
			t.Fatal(err)
		}
		want[key] = v
	}
	seedStart := time.Now()
	seedDEKs(t, st, k, "bigco", big, n-records) // the records' DEKs include the one AddTenant made
	t.Logf("seeded %d DEKs in %s", n-records, time.Since(seedStart))
	counts, err := st.VersionCounts(t.Context(), big)
	if err != nil || total(counts) != n {
		t.Fatalf("seeded %v DEKs (%v), want %d", counts, err, n)
	}
	return want, big
}

func TestE2ESlowVaultDelaysNoOtherSeal(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 DEKs: skipped with -short")
	}
	t.Parallel()
	for _, tc := range []struct {
		name   string
		faults keyvault.Faults
	}{
		{"slow", keyvault.Faults{Latency: 5 * time.Second}},
		{"not answering", keyvault.Faults{Latency: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := startDev(t, t.TempDir(), "--vaults", "2", "--probe-interval", scheduleInterval.String())
			_, big := bigKey(t, d, 10_000, 10)
			d.must("", "vault", "create-key", "small", "--vault", d.cfg.Dev.Vaults[1])
			d.must("", "tenant", "add", "victim", "--key", d.cfg.Dev.Vaults[1]+"/keys/small")
			d.must("victim's record", "put", "victim", "rec")
			js := d.jetstream()

			d.must("", "vault", "rotate", "big", "--vault", d.cfg.Dev.Vaults[0])
			waitStatus(t, js, "bigco", "rewrap.started", 1, 30*time.Second)
			if err := d.remote(0).SetFaults(t.Context(), tc.faults); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = d.remote(0).SetFaults(t.Context(), keyvault.Faults{}) })
			if counts := dekVersions(t, d, "bigco"); total(counts) != 10_000 || len(counts) != 2 {
				t.Logf("big's DEKs by version while vault 0 is %s: %v", tc.name, counts)
			}

			start := time.Now()
			d.must("", "vault", "disable", "small", "--vault", d.cfg.Dev.Vaults[1])
			took := waitSealed(t, d, "victim", "rec", "disabled", 30*time.Second)
			waitStatus(t, js, "victim", "sealed", 1, 30*time.Second)
			published := time.Since(start)
			t.Logf("vault 0 %s, rewrapping %s: victim sealed %s after the disable, sealed published after %s",
				tc.name, big, took, published)
			if bound := scheduleInterval + time.Second; took > bound || published > bound {
				t.Fatalf("victim sealed after %s, published after %s; want both within %s", took, published, bound)
			}
		})
	}
}

// TestE2EDisableMidRewrapSealsAndResumes: a key disabled in the middle of
// its own rewrap seals its tenants as fast as any other key, the rewrap
// stops; enabled again, the rewrap resumes where it stopped and completes,
// with every DEK unwrapped once.
func TestE2EDisableMidRewrapSealsAndResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 DEKs: skipped with -short")
	}
	t.Parallel()
	const n = 10_000
	d := startDev(t, t.TempDir(), "--vaults", "1", "--probe-interval", scheduleInterval.String())
	want, big := bigKey(t, d, n, 50)
	var v1 string
	for v := range dekVersions(t, d, "bigco") {
		v1 = v
	}
	js := d.jetstream()
	kv := d.remote(0)
	if err := kv.ResetCalls(t.Context()); err != nil {
		t.Fatal(err)
	}
	resp, err := d.azkeys().RotateKey(t.Context(), "big", nil)
	if err != nil {
		t.Fatal(err)
	}
	v2 := strings.ToLower(resp.Key.KID.Version())
	st, _ := openTestStoreKEK(t, d, 0)
	moved := waitMoved(t, st, big, v2, func(m int) bool { return m >= 2000 }, 60*time.Second)

	// The key disabled: every version, the one DEKs come from first. (A
	// rewrap whose target alone goes bad puts its DEKs back instead; see
	// handlers' TestRewrapTargetGoesBadHalfWay.)
	d.must("", "vault", "disable", "big", "--version", v1)
	took := waitSealed(t, d, "bigco", "r000", "disabled", 30*time.Second)
	d.must("", "vault", "disable", "big")
	t.Logf("disabled with %d of %d DEKs moved; sealed after %s", moved, n, took)
	if bound := scheduleInterval + time.Second; took > bound {
		t.Fatalf("tenant sealed %s after its key was disabled mid-rewrap, want within %s", took, bound)
	}
	atSeal, _ := st.VersionCounts(t.Context(), big)
	if atSeal[v2] == n {
		t.Fatal("the rewrap finished before the disable; nothing was tested")
	}
	// Stopped: nothing moves while the key is disabled.
	stopped := dekVersions(t, d, "bigco")[v2]
	eventually.True(t, 10*time.Second, "the rewrap stopped", func() bool {
		now := dekVersions(t, d, "bigco")[v2]
		same := now == stopped
		stopped = now
		return same
	})

	d.must("", "vault", "enable", "big")
	d.must("", "vault", "enable", "big", "--version", v1)
	waitStatus(t, js, "bigco", "unsealed", 1, 30*time.Second)
	waitStatus(t, js, "bigco", "rewrap.completed", 1, 120*time.Second)
	if counts := dekVersions(t, d, "bigco"); counts[v2] != n || len(counts) != 1 {
		t.Fatalf("DEKs by version after the resumed rewrap: %v, want all %d under %s", counts, n, v2)
	}
	for k, v := range want {
		if got := d.must("", "get", "bigco", k); got != v {
			t.Fatalf("record %s = %q after the rewrap, want %q", k, got, v)
		}
	}
	calls, err := kv.Calls(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// One unwrap per DEK, a canary and a 1 % sample to verify, a probe's
	// unwrap per version in use per check, and the gets above: a rewrap
	// that restarted instead of resuming would unwrap thousands again.
	if limit := int64(n + n/100 + 400); calls["unwrapKey"] > limit {
		t.Fatalf("%d unwrapKey calls for %d DEKs, want at most %d: DEKs were rewrapped twice", calls["unwrapKey"], n, limit)
	}
	t.Logf("%d unwrapKey calls for %d DEKs", calls["unwrapKey"], n)
}
