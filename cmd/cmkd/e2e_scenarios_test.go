package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd/internal/eventually"
)

const probeInterval = 500 * time.Millisecond

// setup creates key "cmk" and tenants with records through the CLI and
// returns every record's value.
func setup(t *testing.T, d *devProc, tenants, records int) map[[2]string]string {
	t.Helper()
	d.must("", "vault", "create-key", "cmk")
	want := map[[2]string]string{}
	for i := range tenants {
		id := fmt.Sprintf("tenant-%d", i)
		d.must("", "tenant", "add", id, "--key", d.keyURL("cmk"))
		for j := range records {
			v := fmt.Sprintf("value %d of %s \x00\xff binary-safe", j, id)
			k := fmt.Sprintf("rec-%d", j)
			d.must(v, "put", id, k)
			want[[2]string{id, k}] = v
		}
	}
	return want
}

func readAll(t *testing.T, d *devProc, want map[[2]string]string) {
	t.Helper()
	for k, v := range want {
		if got := d.must("", "get", k[0], k[1]); got != v {
			t.Fatalf("cmkd get %s %s = %q, want %q", k[0], k[1], got, v)
		}
	}
}

// dekVersions is `cmkd tenant show --json`'s DEKs per version.
func dekVersions(t *testing.T, d *devProc, tenant string) map[string]int {
	t.Helper()
	var v tenantView
	if err := json.Unmarshal([]byte(d.must("", "tenant", "show", tenant, "--json")), &v); err != nil {
		t.Fatal(err)
	}
	return v.KeyDEKs
}

func setEnabled(t *testing.T, c *azkeys.Client, on bool) {
	t.Helper()
	_, err := c.UpdateKey(t.Context(), "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
}

// waitSealed waits until cmkd get exits 3 naming reason, and returns how long it took.
func waitSealed(t *testing.T, d *devProc, tenant, key, reason string, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	var took time.Duration
	eventually.NoError(t, within, fmt.Sprintf("tenant %s sealed (%s)", tenant, reason), func() (bool, error) {
		_, errs, code := d.cli("", "get", tenant, key)
		took = time.Since(start)
		if code == exitSealed && !strings.Contains(errs, "("+reason+")") {
			return false, fmt.Errorf("cmkd get exited 3 but does not name reason %q: %s", reason, errs)
		}
		return code == exitSealed, nil
	})
	return took
}

func TestE2ERotateRewrapsAndRetires(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	want := setup(t, d, 2, 3)
	js := d.jetstream()
	before := dekVersions(t, d, "tenant-0")
	resp, err := d.azkeys().RotateKey(t.Context(), "cmk", nil)
	if err != nil {
		t.Fatal(err)
	}
	v2 := resp.Key.KID.Version()
	waitStatus(t, js, "tenant-0", "rewrap.completed", 1, 30*time.Second)
	evs := waitStatus(t, js, "tenant-1", "rewrap.completed", 1, 30*time.Second)
	for _, tenant := range []string{"tenant-0", "tenant-1"} {
		if n := count(t, evs, tenant, "version.retired"); n != 1 {
			t.Fatalf("%s: %d version.retired events, want 1", tenant, n)
		}
	}
	for _, e := range evs {
		if e.Kind == "rewrap.completed" && (e.Version != v2 || before[e.PreviousVersion] == 0) {
			t.Fatalf("rewrap.completed %+v: want version %s and the old version as previous_version", e.StatusEvent, v2)
		}
	}
	after := dekVersions(t, d, "tenant-0")
	if len(after) != 1 || after[v2] == 0 {
		t.Fatalf("DEKs by version after rotation %v, want all under %s", after, v2)
	}
	readAll(t, d, want)
}

func TestE2EDisableSealsEnableUnseals(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	want := setup(t, d, 1, 3)
	js := d.jetstream()
	kv := d.azkeys()
	setEnabled(t, kv, false) // Key Vault sends no event for this
	took := waitSealed(t, d, "tenant-0", "rec-0", "disabled", 10*time.Second)
	t.Logf("disable → sealed reads: %s (probe interval %s)", took, probeInterval)
	if took > 2*probeInterval+2*time.Second {
		t.Fatalf("sealed after %s, want within two probe intervals (plus process start of the CLI)", took)
	}
	waitStatus(t, js, "tenant-0", "sealed", 1, 10*time.Second)
	setEnabled(t, kv, true)
	waitStatus(t, js, "tenant-0", "unsealed", 1, 10*time.Second)
	readAll(t, d, want)
}

func TestE2EDeleteRecoverAndRevokeGrant(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	want := setup(t, d, 1, 2)
	js := d.jetstream()
	d.must("", "vault", "delete", "cmk")
	waitSealed(t, d, "tenant-0", "rec-0", "deleted", 10*time.Second)
	d.must("", "vault", "recover", "cmk")
	waitStatus(t, js, "tenant-0", "unsealed", 1, 10*time.Second)
	readAll(t, d, want)

	d.must("", "vault", "revoke")
	waitSealed(t, d, "tenant-0", "rec-0", "access_denied", 10*time.Second)
	d.must("", "vault", "grant")
	waitStatus(t, js, "tenant-0", "unsealed", 2, 10*time.Second)
	readAll(t, d, want)
}

// keyVaultEvent is a KeyNewVersionCreated as Event Grid delivers it.
func keyVaultEvent(t *testing.T, id, kid, name, version string) *messaging.CloudEvent {
	t.Helper()
	data := map[string]any{"Id": kid, "VaultName": "dev0", "ObjectType": "Key", "ObjectName": name, "Version": version, "NBF": nil, "EXP": nil}
	ev, err := messaging.NewCloudEvent("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator/providers/Microsoft.KeyVault/vaults/dev0",
		"Microsoft.KeyVault.KeyNewVersionCreated", data, &messaging.CloudEventOptions{Subject: to.Ptr(name), DataContentType: to.Ptr("application/json")})
	if err != nil {
		t.Fatal(err)
	}
	ev.ID = id
	return &ev
}

func (d *devProc) sendEvents(t *testing.T, evs ...*messaging.CloudEvent) {
	t.Helper()
	eg := d.cfg.Sources.EventGrid
	s, err := aznamespaces.NewSenderClientWithSharedKeyCredential(eg.Endpoint, eg.Topic, azcore.NewKeyCredential(eg.Key),
		&aznamespaces.SenderClientOptions{ClientOptions: azcore.ClientOptions{Transport: trusting(t, eg.CAFile)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SendEvents(t.Context(), evs, nil); err != nil {
		t.Fatal(err)
	}
}

var (
	handledRE   = regexp.MustCompile(`cmkd_eventgrid_deliveries_total\{[^}]*outcome="handled"[^}]*\} (\d+)`)
	reconcileRE = regexp.MustCompile(`cmkd_reconcile_seconds_count (\d+)`)
)

// reconciles is how many key reconciles the worker has finished.
func (d *devProc) reconciles(t *testing.T) int { return d.metric(t, reconcileRE) }

// handled is how many Event Grid deliveries the worker has handled.
func (d *devProc) handled(t *testing.T) int { return d.metric(t, handledRE) }

// metric reads the number re's group matches on the worker's /metrics; 0
// when the series is not there yet.
func (d *devProc) metric(t *testing.T, re *regexp.Regexp) int {
	t.Helper()
	resp, err := http.Get("http://" + d.cfg.HTTP.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	m := re.FindSubmatch(body)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

func waitHandled(t *testing.T, d *devProc, n int) {
	t.Helper()
	eventually.True(t, 30*time.Second, fmt.Sprintf("%d deliveries handled", n), func() bool { return d.handled(t) >= n })
}

func TestE2EReplayedLateAndForgedEventsChangeNothing(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	want := setup(t, d, 1, 2)
	js := d.jetstream()
	kv := d.azkeys()
	v1 := dekVersions(t, d, "tenant-0")
	resp, err := kv.RotateKey(t.Context(), "cmk", nil)
	if err != nil {
		t.Fatal(err)
	}
	kid2 := string(*resp.Key.KID)
	waitStatus(t, js, "tenant-0", "rewrap.completed", 1, 30*time.Second)
	base := d.handled(t)
	settled := statusEvents(t, js)

	var old string
	for v := range v1 {
		old = v
	}
	var evs []*messaging.CloudEvent
	for range 10 { // the same event, delivered ten times
		evs = append(evs, keyVaultEvent(t, "dup-1", kid2, "cmk", resp.Key.KID.Version()))
	}
	evs = append(evs, keyVaultEvent(t, "late-1", d.keyURL("cmk")+"/"+old, "cmk", old)) // an older version after a newer
	evs = append(evs, keyVaultEvent(t, "forged-1", d.keyURL("cmk")+"/0123456789abcdef0123456789abcdef", "cmk", "0123456789abcdef0123456789abcdef"))
	d.sendEvents(t, evs...)
	waitHandled(t, d, base+len(evs))
	// And two reconciles of the key after them, so anything they started
	// has finished.
	passes := d.reconciles(t) + 2
	eventually.True(t, 30*time.Second, "two more reconciles", func() bool { return d.reconciles(t) >= passes })

	after := statusEvents(t, js)
	for _, kind := range []string{"rewrap.started", "rewrap.completed", "rewrap.failed", "version.retired", "sealed"} {
		if a, b := count(t, after, "tenant-0", kind), count(t, settled, "tenant-0", kind); a != b {
			t.Fatalf("replayed, late and forged events changed %s: %d → %d", kind, b, a)
		}
	}
	if got := dekVersions(t, d, "tenant-0"); len(got) != 1 || got[resp.Key.KID.Version()] == 0 {
		t.Fatalf("DEKs by version %v, want all under %s still", got, resp.Key.KID.Version())
	}
	readAll(t, d, want)
}

// TestE2EKeySpelledOtherwiseGetsItsEvents: a tenant added with its key
// spelled unlike the vault's own key id (the name in another case, a
// trailing slash, the scheme in capitals) is the same key: its rotation
// event is acted on at once. The probe interval is an hour, so only the
// event can have caused the rewrap.
func TestE2EKeySpelledOtherwiseGetsItsEvents(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir(), "--probe-interval", "1h")
	d.must("", "vault", "create-key", "cmk")
	spelled := strings.Replace(d.cfg.Dev.KeyVault, "https://", "HTTPS://", 1) + "/keys/CMK/"
	d.must("", "tenant", "add", "acme", "--key", spelled)
	d.must("acme's record", "put", "acme", "rec")
	js := d.jetstream()
	start := time.Now()
	resp, err := d.azkeys().RotateKey(t.Context(), "cmk", nil)
	if err != nil {
		t.Fatal(err)
	}
	waitStatus(t, js, "acme", "rewrap.completed", 1, 10*time.Second)
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("rewrap.completed %s after the rotation, want it within 2 s of the event", took)
	}
	if v := dekVersions(t, d, "acme"); v[strings.ToLower(resp.Key.KID.Version())] != 1 || len(v) != 1 {
		t.Fatalf("DEKs by version %v, want the one under the new version", v)
	}
	if got := d.must("", "get", "acme", "rec"); got != "acme's record" {
		t.Fatalf("record reads %q", got)
	}
}
