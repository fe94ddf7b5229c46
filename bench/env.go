package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
)

// KeyName is the name of the key an Env creates.
const KeyName = "cmk"

// Key kinds an Env can create.
const (
	RSA    = "RSA"     // RSA-2048 software key: remote unwrap, local wrap
	OctHSM = "oct-HSM" // AES-256 HSM key (Managed HSM): remote wrap and unwrap
)

// EnvConfig says what to start.
type EnvConfig struct {
	// Dir holds the SQLite file.
	Dir string
	// Backend, when set, is the store's backend instead of a SQLite file
	// in Dir; the Env closes it, and so does NewEnv when it fails.
	Backend store.Backend
	// KeyKind is RSA (default) or OctHSM.
	KeyKind string
	// Limiter tunes kek's per-vault limiter; zero fields take kek's defaults.
	Limiter kek.LimiterConfig
	// ManagedHSM starts the emulator as a Managed HSM (its challenge,
	// HSM-backed keys, per-second per-kind throttling, purge protection as
	// a production HSM has) and lists it in kek's ManagedHSMs, so that kek
	// treats it as one.
	ManagedHSM bool
	// PlatformKey, when set, names a second key of KeyKind the Env makes
	// in the same vault and gives the store as its PlatformKey: a tenant
	// added with a customer key then has two layers, one added with none
	// the platform layer alone.
	PlatformKey string
	// Store tunes the store's config (Backend, KEK and Logger are set).
	Store  func(*store.Config)
	Logger *slog.Logger
}

// Env is a Key Vault emulator with one key, the kek client and store cmkd
// uses over it, and an azkeys client for baselines and for changing the key.
type Env struct {
	KV    *keyvault.Server
	KEK   *kek.Client
	AZ    *azkeys.Client
	Store *store.Store
	Cred  azcore.TokenCredential
	Key   cmkd.KeyID
	// Version is the key's version when the Env was made.
	Version string
	// Platform is the platform key (versionless) when EnvConfig.PlatformKey
	// named one; zero otherwise.
	Platform cmkd.KeyID
}

// NewEnv starts it all; throttling and faults are off until the scenario
// sets them, so seeding is quick.
func NewEnv(ctx context.Context, cfg EnvConfig) (*Env, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	kv, err := keyvault.Start(keyvault.Config{ThrottleLimit: -1, Logger: cfg.Logger,
		ManagedHSM: cfg.ManagedHSM, PurgeProtection: cfg.ManagedHSM})
	if err != nil {
		if cfg.Backend != nil {
			cfg.Backend.Close()
		}
		return nil, err
	}
	e := &Env{KV: kv, Cred: kek.StaticToken("bench")}
	if err := e.init(ctx, cfg); err != nil {
		if e.Store == nil && cfg.Backend != nil {
			cfg.Backend.Close()
		}
		e.Close()
		return nil, err
	}
	return e, nil
}

func (e *Env) init(ctx context.Context, cfg EnvConfig) error {
	var hsms []string
	if cfg.ManagedHSM {
		hsms = []string{e.KV.URL()}
	}
	var err error
	e.KEK, err = kek.New(kek.Config{
		Credential: e.Cred, RootCAs: e.KV.CAPool(), DisableChallengeResourceVerification: true,
		Policy:      kek.VaultPolicy{AllowLoopback: true}, // the emulator's 127.0.0.1
		ManagedHSMs: hsms, Limiter: cfg.Limiter, Logger: cfg.Logger,
	})
	if err != nil {
		return err
	}
	if e.AZ, err = e.NewAzkeys(policy.RetryOptions{MaxRetries: -1}); err != nil {
		return err
	}
	params := azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}
	if cfg.KeyKind == OctHSM {
		params = azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr[int32](256)}
	}
	id, err := e.createKey(ctx, KeyName, params)
	if err != nil {
		return err
	}
	e.Key, e.Version = id.Versionless(), id.Version
	if cfg.PlatformKey != "" {
		if id, err = e.createKey(ctx, cfg.PlatformKey, params); err != nil {
			return err
		}
		e.Platform = id.Versionless()
	}
	b := cfg.Backend
	if b == nil {
		if b, err = sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(cfg.Dir, "cmkd.db")}); err != nil {
			return err
		}
	}
	sc := store.Config{Backend: b, KEK: e.KEK, PlatformKey: e.Platform, Logger: cfg.Logger}
	if cfg.Store != nil {
		cfg.Store(&sc)
	}
	if e.Store, err = store.New(sc); err != nil {
		if cfg.Backend == nil {
			b.Close()
		}
		return err
	}
	return nil
}

func (e *Env) createKey(ctx context.Context, name string, params azkeys.CreateKeyParameters) (cmkd.KeyID, error) {
	resp, err := e.AZ.CreateKey(ctx, name, params, nil)
	if err != nil {
		return cmkd.KeyID{}, fmt.Errorf("create key %s: %w", name, err)
	}
	return cmkd.ParseKeyID(string(*resp.Key.KID))
}

// NewAzkeys returns an azkeys client for the emulator with the given retry
// policy: what a user writing it by hand would have.
func (e *Env) NewAzkeys(retry policy.RetryOptions) (*azkeys.Client, error) {
	return e.KV.Client(e.Cred, retry)
}

// Close stops everything.
func (e *Env) Close() {
	if e.Store != nil {
		e.Store.Close()
	}
	e.KV.Close()
}

// Rotate makes a new current version of the key and returns it.
func (e *Env) Rotate(ctx context.Context) (string, error) {
	resp, err := e.AZ.RotateKey(ctx, KeyName, nil)
	if err != nil {
		return "", fmt.Errorf("rotate: %w", err)
	}
	e.KEK.Invalidate(e.Key)
	return strings.ToLower(resp.Key.KID.Version()), nil
}

// SetEnabled enables or disables the key's current version.
func (e *Env) SetEnabled(ctx context.Context, on bool) error {
	_, err := e.AZ.UpdateKey(ctx, KeyName, "", azkeys.UpdateKeyParameters{
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)},
	}, nil)
	return err
}

// Seeded is what Seed made.
type Seeded struct {
	Tenants []string
	DEKs    []store.DEK
}

// Seed adds tenants t-00000… on the key, each with deksPerTenant DEKs
// wrapped under the key's current version. It writes through the backend
// with local wraps and no remote verification — setup, not what is measured
// — so that 100,000 DEKs take seconds. The first DEK of every tenant is made
// by store.AddTenant, the normal way.
func (e *Env) Seed(ctx context.Context, tenants, deksPerTenant int, progress func(done int)) (Seeded, error) {
	var s Seeded
	for i := range tenants {
		id := fmt.Sprintf("t-%05d", i)
		if _, err := e.Store.AddTenant(ctx, id, e.Key); err != nil {
			return s, err
		}
		first, err := e.Store.Backend().ActiveDEK(ctx, id)
		if err != nil {
			return s, err
		}
		s.Tenants, s.DEKs = append(s.Tenants, id), append(s.DEKs, first...)
		for range deksPerTenant - 1 {
			d, err := e.newDEK(ctx, id)
			if err != nil {
				return s, err
			}
			s.DEKs = append(s.DEKs, d)
		}
		if progress != nil {
			progress((i + 1) * deksPerTenant)
		}
	}
	return s, nil
}

func (e *Env) newDEK(ctx context.Context, tenant string) (store.DEK, error) {
	d, err := NewDEK(ctx, e.KEK, tenant, e.Key)
	if err != nil {
		return d, err
	}
	if err := e.Store.Backend().InsertDEK(ctx, store.OneLayer(d)); err != nil {
		return d, err
	}
	d.Active = true
	return d, nil
}

// NewDEK makes a random DEK of tenant wrapped locally under key's current
// version, with its key check value, for seeding through a backend: setup,
// not what a scenario measures. The plaintext is zeroed before it returns.
func NewDEK(ctx context.Context, kc *kek.Client, tenant string, key cmkd.KeyID) (store.DEK, error) {
	k := make([]byte, store.DEKSize)
	rand.Read(k)
	defer clear(k)
	id := make([]byte, 16)
	rand.Read(id)
	d := store.DEK{ID: hex.EncodeToString(id), Tenant: tenant, Key: key, KCV: store.KeyCheckValue(k), CreatedAt: time.Now().UTC()}
	var err error
	d.Current, err = kc.Wrap(ctx, key, k)
	return d, err
}

// Throttled is the number of 429s the emulator has answered since the last
// ResetCalls.
func (e *Env) Throttled() int64 { return e.KV.Calls()["throttled"] }

// Calls is the number of key operations (wrap, unwrap, get, …) the emulator
// answered since the last ResetCalls, not counting 401 challenges and 429s.
func (e *Env) Calls() int64 {
	var n int64
	for op, c := range e.KV.Calls() {
		if op != "challenge" && op != "throttled" {
			n += c
		}
	}
	return n
}
