package storetest

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// KeyName is the name of the key NewHarness creates.
const KeyName = "cmk"

// Harness is a Key Vault emulator with an RSA-2048 key KeyName, the kek
// client a Store uses and an azkeys client for the test to change the key.
type Harness struct {
	TB  testing.TB
	KV  *keyvault.Server
	KEK *kek.Client
	AZ  *azkeys.Client
	// Key is the key KeyName, versionless.
	Key cmkd.KeyID
	// Version is the key's version when the harness was made.
	Version string
	// Clock is the clock NewStore gives stores unless tune replaces it.
	Clock *Clock
}

// NewHarness starts an emulator (closed when the test ends) and creates the
// key.
func NewHarness(tb testing.TB) *Harness {
	tb.Helper()
	kv, err := keyvault.Start(keyvault.Config{ThrottleLimit: -1})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := kv.Close(); err != nil {
			tb.Errorf("close key vault emulator: %v", err)
		}
	})
	cred := kek.StaticToken("t")
	k, err := kek.New(kek.Config{
		Credential: cred, RootCAs: kv.CAPool(), DisableChallengeResourceVerification: true,
		Policy:     kek.VaultPolicy{AllowLoopback: true}, // the emulator's 127.0.0.1
		MaxRetries: -1, TryTimeout: 5 * time.Second,
		// Tests and benchmarks unwrap in bursts; the limiter's slow start
		// is kek's concern, not the store's.
		Limiter: kek.LimiterConfig{InitialRate: 2000, MaxRate: 5000},
	})
	if err != nil {
		tb.Fatal(err)
	}
	az, err := kv.Client(cred, policy.RetryOptions{MaxRetries: -1})
	if err != nil {
		tb.Fatal(err)
	}
	h := &Harness{TB: tb, KV: kv, KEK: k, AZ: az, Clock: NewClock(time.Now())}
	resp, err := az.CreateKey(tb.Context(), KeyName, azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048),
	}, nil)
	if err != nil {
		tb.Fatalf("create key: %v", err)
	}
	id, err := cmkd.ParseKeyID(string(*resp.Key.KID))
	if err != nil {
		tb.Fatal(err)
	}
	h.Key, h.Version = id.Versionless(), id.Version
	return h
}

// KID is the versioned key id of version.
func (h *Harness) KID(version string) cmkd.KeyID { return h.Key.At(version) }

// Rotate makes a new current version of the key and returns it. The kek
// client forgets its probe of the key, so the next versionless wrap uses the
// new version at once.
func (h *Harness) Rotate() string {
	h.TB.Helper()
	resp, err := h.AZ.RotateKey(h.TB.Context(), KeyName, nil)
	if err != nil {
		h.TB.Fatalf("rotate: %v", err)
	}
	h.KEK.Invalidate(h.Key)
	return strings.ToLower(resp.Key.KID.Version())
}

// SetEnabled enables or disables one version of the key.
func (h *Harness) SetEnabled(version string, on bool) {
	h.TB.Helper()
	_, err := h.AZ.UpdateKey(h.TB.Context(), KeyName, version, azkeys.UpdateKeyParameters{
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)},
	}, nil)
	if err != nil {
		h.TB.Fatalf("update key: %v", err)
	}
	h.KEK.Invalidate(h.Key)
}

// setKeyEnabled enables or disables one version of the key name.
func (h *Harness) setKeyEnabled(name, version string, on bool) {
	h.TB.Helper()
	_, err := h.AZ.UpdateKey(h.TB.Context(), name, version, azkeys.UpdateKeyParameters{
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)},
	}, nil)
	if err != nil {
		h.TB.Fatalf("update key %s: %v", name, err)
	}
}

// rotateKey makes a new current version of key and returns it.
func (h *Harness) rotateKey(key cmkd.KeyID) string {
	h.TB.Helper()
	resp, err := h.AZ.RotateKey(h.TB.Context(), key.Name, nil)
	if err != nil {
		h.TB.Fatalf("rotate %s: %v", key.Name, err)
	}
	h.KEK.Invalidate(key)
	return strings.ToLower(resp.Key.KID.Version())
}

// NewStore makes a Store over b with the harness's kek client and clock;
// tune may change the config first. The store (and so b) is closed when the
// test ends.
func (h *Harness) NewStore(tb testing.TB, b store.Backend, tune func(*store.Config)) *store.Store {
	tb.Helper()
	cfg := store.Config{Backend: b, KEK: h.KEK, Now: h.Clock.Now}
	if tune != nil {
		tune(&cfg)
	}
	s, err := store.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil {
			tb.Errorf("close store: %v", err)
		}
	})
	return s
}

// Calls is the number of requests Key Vault has answered (challenges and
// refusals included) since the last ResetCalls.
func (h *Harness) Calls() int64 {
	var n int64
	for _, c := range h.KV.Calls() {
		n += c
	}
	return n
}

// Unwraps is the number of unwrapKey calls since the last ResetCalls.
func (h *Harness) Unwraps() int64 { return h.KV.Calls()["unwrapKey"] }

// ResetCalls zeroes the emulator's call counts.
func (h *Harness) ResetCalls() { h.KV.ResetCalls() }

// Clock is a clock the test moves; it starts at a fixed time and only
// moves on Add.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock showing start.
func NewClock(start time.Time) *Clock { return &Clock{now: start} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Add moves the clock by d.
func (c *Clock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
