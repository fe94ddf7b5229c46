package keyvault

import (
	"encoding/json"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azsystemevents"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd/internal/eventually"
)

type fakeClock struct{ unix atomic.Int64 }

func (c *fakeClock) now() time.Time          { return time.Unix(c.unix.Load(), 0) }
func (c *fakeClock) advance(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

func TestNewVersionEvents(t *testing.T) {
	log := newEventLog()
	srv := start(t, Config{VaultName: "myvault", Sink: log.sink})
	c := newClient(t, srv)
	created := createKey(t, c, "evk", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM)})
	rotated, err := c.RotateKey(t.Context(), "evk", nil)
	if err != nil {
		t.Fatal(err)
	}
	imported, err := c.ImportKey(t.Context(), "evk", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeOctHSM), K: make([]byte, 32)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	evs := log.all()
	if len(evs) != 3 {
		t.Fatalf("want 3 events, got %d", len(evs))
	}
	for i, kb := range []azkeys.KeyBundle{created, rotated.KeyBundle, imported.KeyBundle} {
		checkKeyEvent(t, evs[i], azsystemevents.TypeKeyVaultKeyNewVersionCreated, "myvault", kb)
	}

	// Disable, delete, recover and purge emit nothing.
	if _, err := c.UpdateKey(t.Context(), "evk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	srv.Revoke()
	srv.Grant()
	c.DeleteKey(t.Context(), "evk", nil)
	c.RecoverDeletedKey(t.Context(), "evk", nil)
	c.DeleteKey(t.Context(), "evk", nil)
	if _, err := c.PurgeDeletedKey(t.Context(), "evk", nil); err != nil {
		t.Fatal(err)
	}
	if n := len(log.all()); n != 3 {
		t.Fatalf("lifecycle changes other than new versions emitted events: %d", n)
	}
}

func TestExpiryEvents(t *testing.T) {
	clock := &fakeClock{}
	clock.unix.Store(1_800_000_000)
	log := newEventLog()
	srv := start(t, Config{Sink: log.sink, Now: clock.now, NearExpiry: 24 * time.Hour, ExpiryCheck: 5 * time.Millisecond})
	c := newClient(t, srv)
	exp := clock.now().Add(48 * time.Hour)
	kb := createKey(t, c, "exp", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM), KeyAttributes: &azkeys.KeyAttributes{Expires: &exp}})

	clock.advance(25 * time.Hour)
	eventually.True(t, 5*time.Second, "KeyNearExpiry", func() bool { return len(log.all()) >= 2 })
	checkKeyEvent(t, log.all()[1], azsystemevents.TypeKeyVaultKeyNearExpiry, DefaultVaultName, kb)

	clock.advance(24 * time.Hour)
	eventually.True(t, 5*time.Second, "KeyExpired", func() bool { return len(log.all()) >= 3 })
	checkKeyEvent(t, log.all()[2], azsystemevents.TypeKeyVaultKeyExpired, DefaultVaultName, kb)
	if extra := srv.expiryEvents(); len(extra) != 0 || len(log.all()) != 3 {
		t.Fatalf("expiry events must fire once per version: %d more", len(extra))
	}
	// A new exp re-arms them.
	later := clock.now().Add(time.Hour)
	if _, err := c.UpdateKey(t.Context(), "exp", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: &later}}, nil); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "re-armed KeyNearExpiry", func() bool { return len(log.all()) >= 4 })
	if typ := log.all()[3].Type; typ != EventKeyNearExpiry {
		t.Fatalf("got %s", typ)
	}
	// Wrap is refused once expired; the event and the service agree.
	clock.advance(2 * time.Hour)
	_, err := c.WrapKey(t.Context(), "exp", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256KW), Value: make([]byte, 16)}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyExpired")
}

// checkKeyEvent decodes the event the way a consumer does: a CloudEvent
// with the azcore type, data with the azsystemevents type.
func checkKeyEvent(t *testing.T, ev CloudEvent, typ, vaultName string, kb azkeys.KeyBundle) {
	t.Helper()
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var ce messaging.CloudEvent
	if err := json.Unmarshal(raw, &ce); err != nil {
		t.Fatalf("not a CloudEvent: %v", err)
	}
	wantSource := "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator/providers/Microsoft.KeyVault/vaults/" + vaultName
	if ce.Type != typ || ce.Source != wantSource || *ce.Subject != kb.Key.KID.Name() || ce.SpecVersion != "1.0" || ce.ID == "" {
		t.Fatalf("event %+v", ce)
	}
	var data azsystemevents.KeyVaultKeyNewVersionCreatedEventData
	if err := json.Unmarshal(ev.Data, &data); err != nil {
		t.Fatalf("data: %v", err)
	}
	if *data.ID != string(*kb.Key.KID) || *data.Version != kb.Key.KID.Version() || *data.ObjectName != kb.Key.KID.Name() ||
		*data.ObjectType != "Key" || *data.VaultName != vaultName {
		t.Fatalf("data %s", ev.Data)
	}
	// EXP is a float32 in azsystemevents: about 128 s of precision today.
	if kb.Attributes.Expires != nil && (data.EXP == nil || abs(int64(*data.EXP)-kb.Attributes.Expires.Unix()) > 128) {
		t.Fatalf("EXP %v want %v", data.EXP, kb.Attributes.Expires.Unix())
	}
}

func abs(n int64) int64 { return max(n, -n) }
