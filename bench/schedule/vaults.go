package schedule

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"golang.org/x/sync/errgroup"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
)

// vault is one Key Vault emulator with one RSA-2048 key, and the azkeys
// client a customer would change the key with.
type vault struct {
	kv  *keyvault.Server
	az  *azkeys.Client
	key cmkd.KeyID // versionless
}

// calls is the number of key operations the vault answered since its last
// ResetCalls, not counting 401 challenges and 429s.
func (v *vault) calls() int64 {
	var n int64
	for op, c := range v.kv.Calls() {
		if op != "challenge" && op != "throttled" {
			n += c
		}
	}
	return n
}

func (v *vault) throttled() int64 { return v.kv.Calls()["throttled"] }

// rotate makes a new current version of the key and returns it.
func (v *vault) rotate(ctx context.Context) (string, error) {
	resp, err := v.az.RotateKey(ctx, v.key.Name, nil)
	if err != nil {
		return "", fmt.Errorf("rotate %s: %w", v.key, err)
	}
	return strings.ToLower(resp.Key.KID.Version()), nil
}

// fleet is several vaults behind one kek client and one store: one cmkd
// serving tenants whose keys live in different vaults.
type fleet struct {
	vaults []*vault
	kek    *kek.Client
	store  *store.Store
}

// newFleet starts n emulators (throttling off until the scenario sets it,
// so seeding is quick), each with one RSA-2048 key, and the kek client and
// SQLite store over all of them. log goes to the kek client, the store and
// the emulators.
func newFleet(ctx context.Context, dir string, n int, lim kek.LimiterConfig, log *slog.Logger) (f *fleet, err error) {
	f = &fleet{}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	cred := kek.StaticToken("bench")
	roots := x509.NewCertPool()
	for i := range n {
		bv, err := bench.StartVault(ctx, fmt.Sprintf("bench%d", i), log)
		if err != nil {
			return nil, err
		}
		f.vaults = append(f.vaults, &vault{kv: bv.KV, az: bv.AZ, key: bv.Key})
		roots.AppendCertsFromPEM(bv.KV.CAPEM())
	}
	f.kek, err = kek.New(kek.Config{
		Credential: cred, RootCAs: roots, DisableChallengeResourceVerification: true,
		Policy: kek.VaultPolicy{AllowLoopback: true}, Limiter: lim, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	b, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "cmkd.db")})
	if err != nil {
		return nil, err
	}
	if f.store, err = store.New(store.Config{Backend: b, KEK: f.kek, Logger: log}); err != nil {
		b.Close()
		return nil, err
	}
	return f, nil
}

func (f *fleet) close() {
	if f.store != nil {
		f.store.Close()
	}
	for _, v := range f.vaults {
		v.kv.Close()
	}
}

// throttled sets the vault's limit and the scenarios' latency (as bench/
// rewrap's): the windows restart, so a phase starts with a fresh budget.
func throttled(kv *keyvault.Server, limit int, window time.Duration) {
	kv.SetThrottle(limit, window, true)
	kv.SetFaults(keyvault.Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond})
}

// seeder adds tenants and DEKs the quick way. Like bench.Env.Seed it
// writes through the backend with local wraps and no remote verification —
// setup, not what is measured — so that tens of thousands of DEKs take
// seconds. Wraps run on several goroutines; the writes one at a time, so
// that SQLite's writers do not wait out each other's busy timeouts.
type seeder struct {
	st *store.Store
	kc *kek.Client
	mu sync.Mutex // held for each write
}

// tenant adds tenant id on key with deks DEKs wrapped under the key's
// current version; the key is probed once (kek's local wrap needs a fresh
// probe).
func (s *seeder) tenant(ctx context.Context, id string, key cmkd.KeyID, deks int) error {
	t := store.Tenant{ID: id, Key: key, State: store.StateActive, CreatedAt: time.Now().UTC()}
	for i := range deks {
		d, err := bench.NewDEK(ctx, s.kc, id, key)
		if err != nil {
			return err
		}
		if err := s.write(ctx, t, i == 0, d); err != nil {
			return err
		}
	}
	return nil
}

// write inserts d, and first its tenant t (at d's version) when first.
func (s *seeder) write(ctx context.Context, t store.Tenant, first bool, d store.DEK) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if first {
		t.KeyVersion = d.Version()
		if err := s.st.Backend().AddTenant(ctx, t); err != nil {
			return fmt.Errorf("add tenant %s: %w", t.ID, err)
		}
	}
	if err := s.st.Backend().InsertDEK(ctx, store.OneLayer(d)); err != nil {
		return fmt.Errorf("insert dek of %s: %w", t.ID, err)
	}
	return nil
}

// tenants adds tenants prefix-000… on key, perTenant DEKs each.
func (s *seeder) tenants(ctx context.Context, key cmkd.KeyID, prefix string, tenants, perTenant int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range tenants {
		g.Go(func() error { return s.tenant(gctx, fmt.Sprintf("%s-%03d", prefix, i), key, perTenant) })
	}
	return g.Wait()
}

// failedDEKs counts key's DEKs not wrapped by version.
func failedDEKs(ctx context.Context, st *store.Store, key cmkd.KeyID, version string) (int, error) {
	counts, err := st.VersionCounts(ctx, key)
	if err != nil {
		return 0, err
	}
	failed := 0
	for v, n := range counts {
		if v != version {
			failed += n
		}
	}
	return failed, nil
}
