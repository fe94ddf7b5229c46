package main

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/internal/eventually"
)

var (
	webhookHandshakes = regexp.MustCompile(`cmkd_webhook_requests_total\{outcome="handshake"\} (\d+)`)
	webhookRetries    = regexp.MustCompile(`cmkd_webhook_requests_total\{outcome="retry"\} (\d+)`)
	webhookHandled    = regexp.MustCompile(`cmkd_webhook_requests_total\{outcome="handled"\} (\d+)`)
)

// TestE2EPushDelivery runs `cmkd dev --events webhook` with two vaults: Key Vault's events
// reach cmkd only as Event Grid pushes them (the probe interval is an hour,
// so no probe finds a rotation first). The subscription is validated by
// the handshake when it is created; a rotation is rewrapped through a push;
// while cmkd cannot read the key (its vault answers 503 to reads, and so
// the webhook answers 503), Event Grid retries on its schedule and the
// delivery succeeds once the vault answers, losing nothing; a delivery
// that keeps failing is dead-lettered after the maximum attempts.
func TestE2EPushDelivery(t *testing.T) {
	dir := t.TempDir()
	d := startDev(t, dir, "--events", "webhook", "--push-retry", "300ms", "--push-max-attempts", "3", "--probe-interval", "1h",
		"--vaults", "2")
	if d.cfg.Sources.Webhook.Listen == "" || d.cfg.Sources.EventGrid.Endpoint != "" {
		t.Fatalf("config sources %+v: want the webhook alone", d.cfg.Sources)
	}
	eventually.True(t, 30*time.Second, "the subscription's validation handshake", func() bool {
		return d.metric(t, webhookHandshakes) == 1
	})
	// The handshake is answered before the subscription is created.
	eventually.True(t, 10*time.Second, "cmkd dev to log the subscription's creation", func() bool {
		return strings.Contains(d.stderr.String(), "the webhook answered the validation handshake")
	})

	d.must("", "vault", "create-key", "cmk")
	d.must("", "tenant", "add", "acme", "--key", d.keyURL("cmk"))
	d.must("v1", "put", "acme", "r1")
	js := d.jetstream()

	// Pushed and handled, from either vault: both publish to the system
	// topic, as each vault's own system topic would in Azure.
	d.must("", "vault", "rotate", "cmk")
	waitStatus(t, js, "acme", "rewrap.completed", 1, 30*time.Second)
	vaultB := d.cfg.Dev.Vaults[1]
	d.must("", "vault", "create-key", "--vault", vaultB, "cmkb")
	d.must("", "tenant", "add", "beta", "--key", vaultB+"/keys/cmkb")
	d.must("", "vault", "rotate", "--vault", vaultB, "cmkb")
	waitStatus(t, js, "beta", "rewrap.completed", 1, 30*time.Second)

	// The webhook answers 503 while the vault refuses reads; Event Grid
	// retries, and the delivery succeeds once the vault answers again.
	vault := d.remote(0)
	if err := vault.SetFaults(t.Context(), keyvault.Faults{ErrorRate: 1, Methods: []string{"GET"}}); err != nil {
		t.Fatal(err)
	}
	handled := d.metric(t, webhookHandled)
	// An event within worker.event_min_interval (1 s) of the key's last
	// check is acknowledged and its check deferred (the next probe covers
	// it); this one must be checked when it comes.
	time.Sleep(2 * time.Second)
	if _, err := d.azkeys().RotateKey(t.Context(), "cmk", nil); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 60*time.Second, "the webhook to answer 503 to a delivery", func() bool {
		return d.metric(t, webhookRetries) >= 1
	})
	if err := vault.SetFaults(t.Context(), keyvault.Faults{}); err != nil {
		t.Fatal(err)
	}
	waitStatus(t, js, "acme", "rewrap.completed", 2, 60*time.Second)
	if n := d.metric(t, webhookHandled); n <= handled {
		t.Fatalf("handled deliveries %d → %d: the rewrap did not come from a retried push", handled, n)
	}
	if got := strings.TrimSpace(d.must("", "get", "acme", "r1")); got != "v1" {
		t.Fatalf("record after the retried rewrap: %q", got)
	}

	// A delivery that never succeeds is dead-lettered after 3 attempts.
	if err := vault.SetFaults(t.Context(), keyvault.Faults{ErrorRate: 1, Methods: []string{"GET"}}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * time.Second) // as above
	resp, err := d.azkeys().RotateKey(t.Context(), "cmk", nil)
	if err != nil {
		t.Fatal(err)
	}
	var dl map[string]any
	eventually.True(t, 90*time.Second, "the rotation's delivery to be dead-lettered", func() bool {
		dl = deadLetterOf(t, d.cfg.Dev.DeadLetters, resp.Key.KID.Version())
		return dl != nil
	})
	if dl["deadLetterReason"] != "MaxDeliveryAttemptsExceeded" || dl["deliveryAttempts"] != float64(3) ||
		dl["eventType"] != "Microsoft.KeyVault.KeyNewVersionCreated" {
		t.Fatalf("dead letter %v: want the rotation's event, MaxDeliveryAttemptsExceeded after 3 attempts", dl)
	}
	if err := vault.SetFaults(t.Context(), keyvault.Faults{}); err != nil {
		t.Fatal(err)
	}
}

// deadLetterOf finds the dead-lettered Event Grid schema event about a key
// version in dir, laid out as Event Grid lays out dead-letter blobs.
func deadLetterOf(t *testing.T, dir, version string) map[string]any {
	t.Helper()
	var found map[string]any
	_ = filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || filepath.Ext(path) != ".json" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil
		}
		var evs []map[string]any
		if json.Unmarshal(b, &evs) != nil || len(evs) != 1 {
			t.Errorf("dead letter %s is not one event: %s", path, b)
			return nil
		}
		if data, _ := evs[0]["data"].(map[string]any); data["Version"] == version {
			found = evs[0]
			return filepath.SkipAll
		}
		return nil
	})
	return found
}
