package keyvault

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd/internal/eventually"
)

// TestExpiryEventsNotRepeatedAfterRestart: a KeyNearExpiry sent before a
// restart is not sent again after it, and KeyExpired still comes once.
func TestExpiryEventsNotRepeatedAfterRestart(t *testing.T) {
	clock := &fakeClock{}
	clock.unix.Store(1_800_000_000)
	cfg := persistedConfig(t.TempDir())
	cfg.NearExpiry, cfg.ExpiryCheck = 24*time.Hour, 5*time.Millisecond
	log := newEventLog()
	cfg.Sink, cfg.Now = log.sink, clock.now
	srv := start(t, cfg)
	exp := clock.now().Add(time.Hour)
	createKey(t, newClient(t, srv), "exp", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeyAttributes: &azkeys.KeyAttributes{Expires: &exp}})
	eventually.True(t, 5*time.Second, "KeyNearExpiry", func() bool { return len(log.all()) >= 2 })
	if typ := log.all()[1].Type; typ != EventKeyNearExpiry {
		t.Fatalf("got %s, want %s", typ, EventKeyNearExpiry)
	}

	after := newEventLog()
	var checks atomic.Int64 // nothing but the expiry loop reads the clock now
	cfg.Sink = after.sink
	cfg.Now = func() time.Time { checks.Add(1); return clock.now() }
	restart(t, srv, cfg)
	// The second read of the clock begins the second check, so the first
	// check and anything it emitted are done.
	eventually.True(t, 5*time.Second, "an expiry check after the restart", func() bool { return checks.Load() >= 2 })
	if evs := after.all(); len(evs) != 0 {
		t.Fatalf("the restarted emulator sent %s again", evs[0].Type)
	}
	clock.advance(2 * time.Hour)
	eventually.True(t, 5*time.Second, "KeyExpired", func() bool { return len(after.all()) >= 1 })
	if evs := after.all(); len(evs) != 1 || evs[0].Type != EventKeyExpired {
		t.Fatalf("after expiry: %d events, first %s; want one %s", len(evs), evs[0].Type, EventKeyExpired)
	}
}
