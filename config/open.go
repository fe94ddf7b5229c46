package config

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// KEKConfig is the Key Vault client's configuration for keyvault: the
// credential, the CA to trust, the vault policy and the rate limits. log
// and reg may be nil (no logs, no metrics).
func KEKConfig(c *Config, log *slog.Logger, reg prometheus.Registerer) (kek.Config, error) {
	kv := c.KeyVault
	cred, err := kek.NewCredential(kek.CredentialConfig{Kind: kv.Credential, ClientID: kv.ClientID, TenantID: kv.TenantID, Token: kv.Token})
	if err != nil {
		return kek.Config{}, fmt.Errorf("keyvault.credential: %w", err)
	}
	pool, err := LoadCA(kv.CAFile)
	if err != nil {
		return kek.Config{}, fmt.Errorf("keyvault.ca_file: %w", err)
	}
	return kek.Config{
		Credential: cred, RootCAs: pool, DisableChallengeResourceVerification: kv.Emulator, Logger: log,
		Policy: kv.VaultPolicy(), ManagedHSMs: kv.ManagedHSMs,
		Limiter:    kek.LimiterConfig{InitialRate: kv.InitialRate, VaultLimit: kv.VaultLimit},
		Registerer: reg,
	}, nil
}

// OpenKEK builds the Key Vault client keyvault describes (see KEKConfig).
func OpenKEK(c *Config, log *slog.Logger, reg prometheus.Registerer) (*kek.Client, error) {
	kc, err := KEKConfig(c, log, reg)
	if err != nil {
		return nil, err
	}
	return kek.New(kc)
}

// VaultPolicy is the config's answer to which vaults cmkd may call.
func (kv KVConfig) VaultPolicy() kek.VaultPolicy {
	return kek.VaultPolicy{Vaults: kv.Vaults, DNSSuffixes: kv.DNSSuffixes, AllowLoopback: kv.Emulator}
}

// OpenStore opens the configured database (migrating its schema unless
// store.migrate is false) and the store over it, with k for Key Vault,
// keyvault.platform_key as the platform layer and store.cache_ttl bounding
// the DEK cache. Closing the store closes the database.
func OpenStore(ctx context.Context, c *Config, k store.KEK, log *slog.Logger) (*store.Store, error) {
	b, err := OpenBackend(ctx, c.Store)
	if err != nil {
		return nil, err
	}
	platform, err := c.PlatformKey()
	if err != nil {
		return nil, errors.Join(err, b.Close())
	}
	s, err := store.New(store.Config{Backend: b, KEK: k, Logger: log, CacheTTL: c.Store.CacheTTL, StateRecheck: c.Store.StateRecheck, PlatformKey: platform})
	if err != nil {
		return nil, errors.Join(err, b.Close())
	}
	return s, nil
}

// LoadCA returns a pool with the system roots plus the PEM file's CAs; nil
// (the system roots) without a file.
func LoadCA(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(path) // #nosec G304 -- the operator's ca_file setting
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, errors.New("no PEM certificate in " + path)
	}
	return pool, nil
}
