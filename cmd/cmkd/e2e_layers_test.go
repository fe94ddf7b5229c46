package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/store"
)

// writer puts records through the CLI in a loop, as a service would, until
// stopped; every put must succeed.
type writer struct {
	d      *devProc
	tenant string
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex
	wrote  []string
	failed []string
}

func startWriter(d *devProc, tenant string) *writer {
	w := &writer{d: d, tenant: tenant, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; ; i++ {
			select {
			case <-w.stop:
				return
			default:
			}
			key := fmt.Sprintf("w%04d", i)
			cmd := exec.Command(d.bin, "put", tenant, key)
			cmd.Env = append(os.Environ(), "CMKD_CONFIG="+filepath.Join(d.dir, "cmkd.yaml"))
			cmd.Stdin = strings.NewReader("value of " + key)
			var errb bytes.Buffer
			cmd.Stderr = &errb
			err := cmd.Run()
			w.mu.Lock()
			if err != nil {
				w.failed = append(w.failed, key+": "+strings.TrimSpace(errb.String()))
			} else {
				w.wrote = append(w.wrote, key)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// waitWrites waits until the writer has written at least n more records.
func (w *writer) waitWrites(t *testing.T, n int) {
	t.Helper()
	w.mu.Lock()
	from := len(w.wrote)
	w.mu.Unlock()
	eventually.True(t, 60*time.Second, fmt.Sprintf("%d more writes", n), func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return len(w.wrote) >= from+n
	})
}

func (w *writer) finish(t *testing.T) []string {
	t.Helper()
	close(w.stop)
	<-w.done
	if len(w.failed) > 0 {
		t.Fatalf("%d of %d writes failed during the key changes, e.g. %s", len(w.failed), len(w.failed)+len(w.wrote), w.failed[0])
	}
	return w.wrote
}

// A platform-only tenant gets a customer key in vault A, then a key in
// vault B, then the platform layer alone again, while a writer puts records
// in a loop: no write fails, every record reads back, and each change is
// reported on NATS with the old key retired.
func TestE2EKeyChangeInPlaceWhileWriting(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir(), "--vaults", "2")
	vaultB := d.cfg.Dev.Vaults[1]
	d.must("", "tenant", "add", "acme")
	d.must("", "vault", "create-key", "cmk")
	d.must("", "vault", "create-key", "--vault", vaultB, "cmkb")
	w := startWriter(d, "acme")
	w.waitWrites(t, 5)
	steps := [][]string{
		{"--key", d.keyURL("cmk")},
		{"--key", vaultB + "/keys/cmkb"},
		{"--platform-only", "--yes"},
	}
	for _, step := range steps {
		d.must("", append([]string{"tenant", "set-key", "acme"}, step...)...)
		w.waitWrites(t, 5)
	}
	wrote := w.finish(t)
	var v tenantView
	mustJSON(t, d.must("", "tenant", "show", "acme", "--json"), &v)
	if !v.Key.IsZero() || strings.Join(v.Layers, ",") != "platform" || v.Change != nil {
		t.Fatalf("tenant after the changes: %+v", v)
	}
	readBack(t, d, "acme", wrote)
	evs := waitStatus(t, d.jetstream(), "acme", string(cmkd.KindKeyChangeCompleted), 3, 30*time.Second)
	if n := count(t, evs, "acme", string(cmkd.KindKeyChangeStarted)); n != 3 {
		t.Fatalf("%d key.change.started, want 3", n)
	}
	retired := map[string]bool{}
	for _, e := range evs {
		if e.Tenant == "acme" && e.Kind == cmkd.KindVersionRetired && e.Reason == "key_changed" {
			retired[e.Key.Name] = true
		}
	}
	if !retired["cmk"] || !retired["cmkb"] {
		t.Fatalf("keys retired by the changes: %v, want cmk and cmkb", retired)
	}
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("%v in %q", err, s)
	}
}

// readBack reads every record through the CLI, eight at a time.
func readBack(t *testing.T, d *devProc, tenant string, keys []string) {
	t.Helper()
	var mu sync.Mutex
	var bad []string
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			cmd := exec.Command(d.bin, "get", tenant, k)
			cmd.Env = append(os.Environ(), "CMKD_CONFIG="+filepath.Join(d.dir, "cmkd.yaml"))
			out, err := cmd.Output()
			if err != nil || string(out) != "value of "+k {
				mu.Lock()
				bad = append(bad, fmt.Sprintf("%s: %q %v", k, out, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(bad) > 0 {
		t.Fatalf("%d of %d records unreadable, e.g. %s", len(bad), len(keys), bad[0])
	}
}

// Revoking a tenant's own key seals that tenant; revoking the platform key
// seals every tenant, with a reason that names the platform layer; each
// reopens when its key comes back. Rotating each key rewraps its own layer
// only: the other key sees no unwrap.
func TestE2ELayersSealAndRotateByLayer(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir(), "--vaults", "2")
	vaultB := d.cfg.Dev.Vaults[1]
	d.must("", "vault", "create-key", "--vault", vaultB, "cmk")
	d.must("", "tenant", "add", "acme", "--key", vaultB+"/keys/cmk")
	d.must("", "tenant", "add", "beta")
	d.must("hello", "put", "acme", "greeting")
	d.must("hello", "put", "beta", "greeting")
	const deks = 60 // each rewrap moves this many layers, so that its calls stand out from probes
	st := openTestStore(t, d, 1)
	for i := range deks - 1 {
		must(t, st.Put(t.Context(), "acme", fmt.Sprintf("r%02d", i), []byte("x")))
	}
	platform := cmkd.MustParseKeyID(d.cfg.KeyVault.PlatformKey)
	ops := d.cfg.Dev.PlatformVault
	a := keyvault.Remote{URL: ops, Token: d.cfg.KeyVault.Token, HTTP: trusting(t, d.cfg.KeyVault.CAFile)} // the platform key's vault
	b := d.remote(1)                                                                                      // the customer key's

	// Rotate each key: its layer's shares move (one unwrap each); the
	// other key is asked only for its probes' sentinel unwraps.
	rotations := []struct {
		vault    string
		key      string
		counts   keyvault.Remote
		other    keyvault.Remote
		otherKey string
		moved    func(version string) bool
	}{
		{vaultB, "cmk", b, a, platform.Name, func(v string) bool { return dekCount(t, d, "acme")[v] == deks }},
		{ops, platform.Name, a, b, "cmk", func(v string) bool {
			return dekCount(t, d, "acme")["platform "+v] == deks && dekCount(t, d, "beta")["platform "+v] == 1
		}},
	}
	for _, r := range rotations {
		must(t, a.ResetCalls(t.Context()))
		must(t, b.ResetCalls(t.Context()))
		resp, err := d.azkeysAt(r.vault).RotateKey(t.Context(), r.key, nil)
		must(t, err)
		v := resp.Key.KID.Version()
		eventually.True(t, 60*time.Second, r.key+"'s layers at "+v, func() bool { return r.moved(v) })
		mine, err := r.counts.KeyCalls(t.Context())
		must(t, err)
		theirs, err := r.other.KeyCalls(t.Context())
		must(t, err)
		t.Logf("rotating %s: unwraps under it %d, under %s %d", r.key, mine[r.key]["unwrapKey"], r.otherKey, theirs[r.otherKey]["unwrapKey"])
		if mine[r.key]["unwrapKey"] < deks || theirs[r.otherKey]["unwrapKey"] > deks/4 {
			t.Fatalf("rotating %s: %d unwraps under it (want ≥ %d), %d under %s (want probes only)",
				r.key, mine[r.key]["unwrapKey"], deks, theirs[r.otherKey]["unwrapKey"], r.otherKey)
		}
	}

	// Revoke the customer key: acme seals, beta does not.
	setKeyEnabled(t, d.azkeysAt(vaultB), "cmk", false)
	waitSealed(t, d, "acme", "greeting", cmkd.ReasonDisabled, 30*time.Second)
	if got := d.must("", "get", "beta", "greeting"); got != "hello" {
		t.Fatalf("beta read %q while acme's own key was disabled", got)
	}
	setKeyEnabled(t, d.azkeysAt(vaultB), "cmk", true)
	waitOpen(t, d, "acme")

	// Revoke the platform key: every tenant seals, naming the platform layer.
	setKeyEnabled(t, d.azkeysAt(ops), platform.Name, false)
	for _, tn := range []string{"acme", "beta"} {
		waitSealed(t, d, tn, "greeting", cmkd.PlatformReason(cmkd.ReasonDisabled), 30*time.Second)
	}
	setKeyEnabled(t, d.azkeysAt(ops), platform.Name, true)
	waitOpen(t, d, "acme")
	waitOpen(t, d, "beta")
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// azkeysAt is an azkeys client of any vault of the dev system.
func (d *devProc) azkeysAt(vault string) *azkeys.Client {
	d.t.Helper()
	c, err := azkeys.NewClient(vault, staticToken(d.cfg.KeyVault.Token), &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: trusting(d.t, d.cfg.KeyVault.CAFile), Retry: policy.RetryOptions{MaxRetries: -1}},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		d.t.Fatal(err)
	}
	return c
}

func setKeyEnabled(t *testing.T, c *azkeys.Client, name string, on bool) {
	t.Helper()
	_, err := c.UpdateKey(t.Context(), name, "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)}}, nil)
	must(t, err)
}

// dekCount is tenant show's DEK count by layer and version.
func dekCount(t *testing.T, d *devProc, tenant string) map[string]int {
	t.Helper()
	var v tenantView
	mustJSON(t, d.must("", "tenant", "show", tenant, "--json"), &v)
	return v.DEKs
}

// waitVersion waits until every DEK of tenant's own layer is at version.
func waitVersion(t *testing.T, d *devProc, tenant, version string) {
	t.Helper()
	eventually.True(t, 30*time.Second, tenant+"'s DEKs at "+version, func() bool {
		n := dekCount(t, d, tenant)
		return n[version] > 0 && len(n) == 2 // its own layer at version, and the platform layer
	})
}

func waitOpen(t *testing.T, d *devProc, tenant string) {
	t.Helper()
	eventually.True(t, 30*time.Second, tenant+" unsealed", func() bool {
		_, _, code := d.cli("", "get", tenant, "greeting")
		return code == exitOK
	})
}

// A key Azure services would refuse is refused at tenant add, each with
// its own message and exit code; --allow-purgeable accepts a test vault's
// key with a warning.
func TestE2EOnboardingRefusals(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir(), "--vaults", "2")
	vaultB := d.cfg.Dev.Vaults[1]
	must(t, d.remote(1).SetSoftDelete(t.Context(), false, 0)) // vault B: no purge protection
	az := d.azkeys()
	create := func(name string, p azkeys.CreateKeyParameters) {
		t.Helper()
		_, err := az.CreateKey(t.Context(), name, p, nil)
		must(t, err)
	}
	rsa := func(ops ...azkeys.KeyOperation) azkeys.CreateKeyParameters {
		p := azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}
		for _, o := range ops {
			p.KeyOps = append(p.KeyOps, to.Ptr(o))
		}
		return p
	}
	create("nounwrap", rsa(azkeys.KeyOperationWrapKey, azkeys.KeyOperationEncrypt))
	create("ec", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)})
	expired := rsa()
	expired.KeyAttributes = &azkeys.KeyAttributes{Expires: to.Ptr(time.Now().Add(-time.Hour))}
	create("expired", expired)
	d.must("", "vault", "create-key", "--vault", vaultB, "testkey")

	for _, c := range []struct {
		name, key string
		code      int
		says      string
	}{
		{"purgeable", vaultB + "/keys/testkey", exitPurgeable, "--enable-purge-protection"},
		{"no unwrapKey", d.keyURL("nounwrap"), exitKeyOps, "unwrapKey"},
		{"EC", d.keyURL("ec"), exitKeyType, "RSA"},
		{"expired", d.keyURL("expired"), exitKeyExpired, "expir"},
	} {
		_, errs, code := d.cli("", "tenant", "add", "t-"+strings.ReplaceAll(c.name, " ", "-"), "--key", c.key)
		if code != c.code || !strings.Contains(errs, c.says) || !strings.Contains(errs, "fix:") {
			t.Errorf("%s key: exit %d, want %d, and a fix naming %q:\n%s", c.name, code, c.code, c.says, errs)
		}
	}
	if out := d.must("", "tenant", "list"); strings.Contains(out, "t-") {
		t.Fatalf("a refused key left a tenant:\n%s", out)
	}
	_, errs, code := d.cli("", "tenant", "add", "testing", "--key", vaultB+"/keys/testkey", "--allow-purgeable")
	if code != exitOK || !strings.Contains(errs, "warning") {
		t.Fatalf("--allow-purgeable: exit %d, want 0 and a warning:\n%s", code, errs)
	}
}

// A tenant on an oct-HSM key in the emulated Managed HSM goes through
// rotate → rewrap, disable → sealed, enable → unsealed.
func TestE2EManagedHSMTenant(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir(), "--hsm")
	hsm := d.cfg.Dev.HSM
	d.must("", "vault", "create-key", "--vault", hsm, "--kty", "oct-HSM", "hsmkey")
	d.must("", "tenant", "add", "bank", "--key", hsm+"/keys/hsmkey")
	d.must("hello", "put", "bank", "greeting")
	c := d.azkeysAt(hsm)
	resp, err := c.RotateKey(t.Context(), "hsmkey", nil)
	must(t, err)
	waitVersion(t, d, "bank", resp.Key.KID.Version())
	setKeyEnabled(t, c, "hsmkey", false)
	waitSealed(t, d, "bank", "greeting", cmkd.ReasonDisabled, 30*time.Second)
	setKeyEnabled(t, c, "hsmkey", true)
	waitOpen(t, d, "bank")
	if got := d.must("", "get", "bank", "greeting"); got != "hello" {
		t.Fatalf("bank read %q", got)
	}
}

// kill -9 in the middle of a key change of 10,000 DEKs: on restart the
// worker resumes the change and completes it, and every record reads.
func TestE2EKill9MidKeyChange(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 DEKs: skipped with -short")
	}
	t.Parallel()
	const deks, records = 10_000, 500
	d := startDev(t, t.TempDir(), "--kv-throttle", "-1", "--kv-rate", "1000")
	d.must("", "tenant", "add", "big") // the platform layer alone
	d.must("", "vault", "create-key", "cmk")
	st, k := openTestStoreKEK(t, d, 1) // a new DEK for every record
	for i := range records {           // the first record uses the DEK tenant add made
		must(t, st.Put(t.Context(), "big", fmt.Sprintf("r%03d", i), []byte(fmt.Sprintf("big record %d", i))))
	}
	platform := cmkd.MustParseKeyID(d.cfg.KeyVault.PlatformKey)
	seedDEKs(t, st, k, "big", platform, deks-records)
	if n := len(groupedDEKs(t, st, "big")); n != deks {
		t.Fatalf("set up %d DEKs, want %d", n, deks)
	}

	d.must("", "tenant", "set-key", "big", "--key", d.keyURL("cmk"), "--no-wait") // the worker moves them
	moved := func() int {
		n := 0
		for _, layers := range groupedDEKs(t, st, "big") {
			if len(layers) == 2 {
				n++
			}
		}
		return n
	}
	eventually.True(t, 120*time.Second, "500 DEKs moved", func() bool { return moved() >= 500 })
	d.kill9()
	at := moved()
	t.Logf("killed with %d of %d DEKs moved", at, deks)
	if at == deks {
		t.Fatal("the change finished before the kill; nothing was tested")
	}

	d.start()
	eventually.True(t, 300*time.Second, "the key change to complete", func() bool {
		tn, err := st.Tenant(t.Context(), "big")
		return err == nil && tn.Change == nil
	})
	if n := moved(); n != deks {
		t.Fatalf("%d of %d DEKs in both layers after the change completed", n, deks)
	}
	waitStatus(t, d.jetstream(), "big", string(cmkd.KindKeyChangeCompleted), 1, 30*time.Second)
	fresh := openTestStore(t, d, 0) // a cold cache: every DEK unwraps in Key Vault, in both layers
	for i := range records {
		got, err := fresh.Get(t.Context(), "big", fmt.Sprintf("r%03d", i))
		if err != nil || string(got) != fmt.Sprintf("big record %d", i) {
			t.Fatalf("record %d after kill -9 and restart: %q, %v", i, got, err)
		}
	}
}

// groupedDEKs lists the tenant's DEKs, each as its layers.
func groupedDEKs(t *testing.T, st *store.Store, tenant string) map[string][]store.DEK {
	t.Helper()
	out := map[string][]store.DEK{}
	after := ""
	for {
		ls, err := st.Backend().TenantDEKs(t.Context(), tenant, after, 5000)
		must(t, err)
		if len(ls) == 0 {
			return out
		}
		for _, l := range ls {
			out[l.ID] = append(out[l.ID], l)
			after = l.ID
		}
	}
}
