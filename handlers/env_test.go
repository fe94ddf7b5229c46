package handlers_test

import (
	"context"
	"database/sql"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
	"github.com/cmkd-io/cmkd/store/storetest"
)

// env is a Key Vault emulator, the real kek client, a SQLite store and a
// Reconciler, with a clock the test moves.
type env struct {
	t     *testing.T
	kv    *keyvault.Server
	az    *azkeys.Client
	kek   *kek.Client
	store *store.Store
	rec   *handlers.Reconciler
	clock *clock
	key   cmkd.KeyID
	db    string

	mu        sync.Mutex
	broadcast []string
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time              { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration)         { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }
func newClock() *clock                       { return &clock{now: time.Now()} }
func (e *env) ctx() context.Context          { return e.t.Context() }
func (e *env) kid(version string) cmkd.KeyID { return e.key.At(version) }

func newEnv(t *testing.T, tune func(*handlers.Config)) *env {
	t.Helper()
	h := storetest.NewHarness(t)
	db := filepath.Join(t.TempDir(), "cmkd.db")
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: db})
	if err != nil {
		t.Fatal(err)
	}
	st := h.NewStore(t, b, func(c *store.Config) { c.Now = time.Now })
	e := &env{t: t, kv: h.KV, az: h.AZ, kek: h.KEK, store: st, clock: newClock(), key: h.Key, db: db}
	cfg := handlers.Config{
		Store: st, KEK: h.KEK, Now: e.clock.Now, SampleRate: 1,
		Broadcast: func(tenant string) { e.mu.Lock(); e.broadcast = append(e.broadcast, tenant); e.mu.Unlock() },
	}
	if tune != nil {
		tune(&cfg)
	}
	if e.rec, err = handlers.New(cfg); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) rotate() string {
	e.t.Helper()
	resp, err := e.az.RotateKey(e.ctx(), "cmk", nil)
	if err != nil {
		e.t.Fatalf("rotate: %v", err)
	}
	return resp.Key.KID.Version()
}

func (e *env) setEnabled(version string, enabled bool) {
	e.t.Helper()
	_, err := e.az.UpdateKey(e.ctx(), "cmk", version, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(enabled)}}, nil)
	if err != nil {
		e.t.Fatalf("update key: %v", err)
	}
}

// tenants adds n tenants on the key, each with records, and returns what
// each record holds.
func (e *env) tenants(n, records int) map[[2]string][]byte {
	e.t.Helper()
	want := map[[2]string][]byte{}
	for i := range n {
		id := "t" + string(rune('a'+i))
		if _, err := e.store.AddTenant(e.ctx(), id, e.key); err != nil {
			e.t.Fatalf("add tenant: %v", err)
		}
		for j := range records {
			key := "r" + string(rune('0'+j))
			val := []byte(id + "/" + key + " value")
			if err := e.store.Put(e.ctx(), id, key, val); err != nil {
				e.t.Fatalf("put: %v", err)
			}
			want[[2]string{id, key}] = val
		}
	}
	return want
}

func (e *env) reconcile() handlers.Result {
	e.t.Helper()
	res, err := e.rec.Reconcile(e.ctx(), handlers.Request{Key: e.key, Cause: "test"})
	if err != nil {
		e.t.Fatalf("reconcile: %v", err)
	}
	return res
}

// outbox returns every status event written so far, by kind.
func (e *env) outbox() map[cmkd.Kind][]cmkd.StatusEvent {
	e.t.Helper()
	entries, err := e.store.ClaimOutbox(e.ctx(), "test-"+time.Now().String(), 100000, time.Nanosecond)
	if err != nil {
		e.t.Fatal(err)
	}
	got := map[cmkd.Kind][]cmkd.StatusEvent{}
	for _, en := range entries {
		got[en.Event.Kind] = append(got[en.Event.Kind], en.Event)
	}
	return got
}

func (e *env) readAll(want map[[2]string][]byte) {
	e.t.Helper()
	for k, v := range want {
		got, err := e.store.Get(e.ctx(), k[0], k[1])
		if err != nil {
			e.t.Fatalf("get %s/%s: %v", k[0], k[1], err)
		}
		if string(got) != string(v) {
			e.t.Fatalf("get %s/%s = %q, want %q", k[0], k[1], got, v)
		}
	}
}

// otherProcess opens the store again with a Key Vault client of its own,
// as another replica or a CLI command would have.
func (e *env) otherProcess(tune func(*store.Config)) *store.Store {
	e.t.Helper()
	k, err := kek.New(kek.Config{Credential: kek.StaticToken("other"), RootCAs: e.kv.CAPool(),
		DisableChallengeResourceVerification: true, Limiter: kek.LimiterConfig{InitialRate: 1000},
		Policy: kek.VaultPolicy{AllowLoopback: true}})
	if err != nil {
		e.t.Fatal(err)
	}
	b, err := sqlite.Open(e.ctx(), sqlite.Config{Path: e.db})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := store.Config{Backend: b, KEK: k}
	if tune != nil {
		tune(&cfg)
	}
	st, err := store.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	return st
}

// kidVersion is the version the key's DEKs are under, when there is one.
func (e *env) kidVersion() string {
	e.t.Helper()
	counts, err := e.store.VersionCounts(e.ctx(), e.key)
	if err != nil || len(counts) != 1 {
		e.t.Fatalf("DEKs by version %v (%v), want one version", counts, err)
	}
	for v := range counts {
		return v
	}
	return ""
}

// dekOf is the id of tenant's active DEK.
func (e *env) dekOf(tenant string) string {
	e.t.Helper()
	d, err := e.store.Backend().ActiveDEK(e.ctx(), tenant)
	if err != nil {
		e.t.Fatal(err)
	}
	return d[0].ID
}

// corruptWrapping overwrites a DEK's wrapping with bytes Key Vault cannot
// unwrap, as a disk or a bug would.
func (e *env) corruptWrapping(dekID string) {
	e.t.Helper()
	db, err := sql.Open("sqlite", e.db)
	if err != nil {
		e.t.Fatal(err)
	}
	defer db.Close()
	junk := make([]byte, 256) // an RSA-2048 ciphertext's size, all zero
	if _, err := db.ExecContext(e.ctx(), `UPDATE dek_wrappings SET wrapped = ? WHERE dek_id = ?`, junk, dekID); err != nil {
		e.t.Fatal(err)
	}
}
