package main

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"golang.org/x/sync/errgroup"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
)

func startNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	return natstest.Start(t, port, dir)
}

// TestE2ENATSOutageLosesNoStatusEvent: while JetStream is down, keys are
// still rotated, sealed and unsealed; once it is back every status event
// arrives, none twice.
func TestE2ENATSOutageLosesNoStatusEvent(t *testing.T) {
	t.Parallel()
	natsDir := t.TempDir()
	ns := startNATS(t, -1, natsDir)
	natsURL := ns.ClientURL()
	d := startDev(t, t.TempDir(), "--nats", natsURL)
	want := setup(t, d, 1, 2)
	js := d.jetstream()
	kv := d.azkeys()
	waitStatus(t, js, "tenant-0", "sealed", 0, 5*time.Second)

	ns.Shutdown()
	ns.WaitForShutdown()
	resp, err := kv.RotateKey(t.Context(), "cmk", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The rewrap happens without NATS. It must be over before the key is
	// disabled: disabling the new version while DEKs are still under the
	// old, enabled one rightly seals nothing.
	v2 := strings.ToLower(resp.Key.KID.Version())
	eventually.True(t, 30*time.Second, "the rewrap without NATS", func() bool {
		vs := dekVersions(t, d, "tenant-0")
		return len(vs) == 1 && vs[v2] > 0
	})
	setEnabled(t, kv, false)
	waitSealed(t, d, "tenant-0", "rec-0", "disabled", 10*time.Second)
	setEnabled(t, kv, true)
	eventually.True(t, 30*time.Second, "tenant-0 readable again", func() bool {
		_, _, code := d.cli("", "get", "tenant-0", "rec-0")
		return code == 0
	})

	u, _ := url.Parse(natsURL)
	port, _ := strconv.Atoi(u.Port())
	ns = startNATS(t, port, natsDir)
	defer ns.Shutdown()
	for _, kind := range []string{"rewrap.started", "rewrap.completed", "version.retired", "sealed", "unsealed"} {
		evs := waitStatus(t, js, "tenant-0", kind, 1, 60*time.Second)
		if n := count(t, evs, "tenant-0", kind); n != 1 {
			t.Fatalf("%d %s events after the outage, want exactly 1", n, kind)
		}
	}
	readAll(t, d, want)
}

// TestE2EKill9MidRewrap: kill -9 of cmkd dev in the middle of re-wrapping
// 10,000 DEKs, then a restart: the rewrap completes, no DEK is lost and
// every record reads.
func TestE2EKill9MidRewrap(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 DEKs: skipped with -short")
	}
	t.Parallel()
	dir := t.TempDir()
	// The emulator's throttle is lifted and cmkd starts fast: this test is
	// about crash safety, not about Key Vault's rate (the benchmarks are).
	d := startDev(t, dir, "--kv-throttle", "-1", "--kv-rate", "1000")
	d.must("", "vault", "create-key", "cmk")
	st := openTestStore(t, d, 1) // a new DEK for every record: 10,000 DEKs
	const tenants, perTenant = 100, 100
	setupStart := time.Now()
	forTenants(t, tenants, func(id string) error {
		if _, err := st.AddTenant(t.Context(), id, d.key("cmk")); err != nil {
			return err
		}
		for j := range perTenant { // the first uses the DEK AddTenant made
			if err := st.Put(t.Context(), id, fmt.Sprintf("r%03d", j), recordValue(id, j)); err != nil {
				return err
			}
		}
		return nil
	})
	t.Logf("set up %d DEKs in %s", tenants*perTenant, time.Since(setupStart))
	counts, err := st.VersionCounts(t.Context(), d.key("cmk"))
	if err != nil || total(counts) != tenants*perTenant {
		t.Fatalf("set up %v DEKs (%v), want %d", counts, err, tenants*perTenant)
	}
	resp, err := d.azkeys().RotateKey(t.Context(), "cmk", nil)
	if err != nil {
		t.Fatal(err)
	}
	v2 := resp.Key.KID.Version()
	moved := waitMoved(t, st, d.key("cmk"), v2, func(n int) bool { return n >= 500 }, 120*time.Second)
	d.kill9()
	t.Logf("killed with %d of %d DEKs re-wrapped", moved, tenants*perTenant)
	if moved == tenants*perTenant {
		t.Fatal("the rewrap finished before the kill; nothing was tested")
	}

	d.start()
	waitMoved(t, st, d.key("cmk"), v2, func(n int) bool { return n == tenants*perTenant }, 300*time.Second)
	counts, _ = st.VersionCounts(t.Context(), d.key("cmk"))
	if total(counts) != tenants*perTenant {
		t.Fatalf("%d DEKs after the restart, want %d", total(counts), tenants*perTenant)
	}
	fresh := openTestStore(t, d, 0) // a cold cache: every DEK unwraps in Key Vault
	forTenants(t, tenants, func(id string) error {
		for j := range perTenant {
			got, err := fresh.Get(t.Context(), id, fmt.Sprintf("r%03d", j))
			if err != nil || string(got) != string(recordValue(id, j)) {
				return fmt.Errorf("record %s/%d after kill -9 and restart: %q, %v", id, j, got, err)
			}
		}
		return nil
	})
}

// forTenants runs fn for tenants t000…, eight at a time.
func forTenants(t *testing.T, n int, fn func(id string) error) {
	t.Helper()
	var g errgroup.Group
	g.SetLimit(8)
	for i := range n {
		g.Go(func() error { return fn(fmt.Sprintf("t%03d", i)) })
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
}

func recordValue(tenant string, i int) []byte { return []byte(fmt.Sprintf("%s record %d", tenant, i)) }

func total(m map[string]int) int {
	n := 0
	for _, c := range m {
		n += c
	}
	return n
}

func waitMoved(t *testing.T, st *store.Store, key cmkd.KeyID, v string, done func(int) bool, within time.Duration) int {
	t.Helper()
	var n int
	eventually.NoError(t, within, "DEKs moved to "+v, func() (bool, error) {
		counts, err := st.VersionCounts(t.Context(), key)
		n = counts[v]
		return done(n), err
	})
	return n
}

// openTestStore opens the dev system's SQLite store from the test, as a
// second process would, with its own Key Vault client.
func openTestStore(t *testing.T, d *devProc, dekMaxEncryptions int64) *store.Store {
	t.Helper()
	st, _ := openTestStoreKEK(t, d, dekMaxEncryptions)
	return st
}

// openTestStoreKEK is openTestStore, with the Key Vault client it uses.
func openTestStoreKEK(t *testing.T, d *devProc, dekMaxEncryptions int64) (*store.Store, *kek.Client) {
	t.Helper()
	pool, err := loadCA(d.cfg.KeyVault.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	k, err := kek.New(kek.Config{Credential: kek.StaticToken(d.cfg.KeyVault.Token), RootCAs: pool,
		DisableChallengeResourceVerification: true, Policy: vaultPolicy(d.cfg.KeyVault),
		Limiter: kek.LimiterConfig{InitialRate: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(d.dir, "cmkd.db")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Config{Backend: b, KEK: k, DEKMaxEncryptions: dekMaxEncryptions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, k
}
