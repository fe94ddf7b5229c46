package main

import (
	"context"
	"crypto/x509"
	"os"

	"github.com/cmkd-io/cmkd/config"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// The configuration lives in package config, which applications share;
// these names keep the commands' code reading as before.
type (
	Config          = config.Config
	StoreConfig     = config.StoreConfig
	NATSConfig      = config.NATSConfig
	KVConfig        = config.KVConfig
	Sources         = config.Sources
	EventGridSource = config.EventGridSource
	WebhookSource   = config.WebhookSource
	QueueSource     = config.QueueSource
	WorkerConf      = config.WorkerConf
	HTTPConfig      = config.HTTPConfig
	DevConfig       = config.DevConfig
)

// loadConfig reads path, applies CMKD_* environment overrides and validates.
func loadConfig(path string) (*Config, error) { return config.Load(path) }

// applyEnv overrides fields from CMKD_<PATH> variables.
func applyEnv(c *Config, lookup func(string) (string, bool)) error { return c.ApplyEnv(lookup) }

// writeConfig writes c as YAML to path (0600: it may hold secrets).
func writeConfig(path string, c *Config) error { return config.Write(path, c) }

// configPath resolves --config, then CMKD_CONFIG, then ./cmkd-data/cmkd.yaml.
func configPath(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	if p := os.Getenv("CMKD_CONFIG"); p != "" {
		return p
	}
	return "cmkd-data/cmkd.yaml"
}

// vaultPolicy is the config's answer to which vaults cmkd may call.
func vaultPolicy(kv KVConfig) kek.VaultPolicy { return kv.VaultPolicy() }

// openBackend opens the configured database, migrating its schema unless
// store.migrate is false.
func openBackend(ctx context.Context, s StoreConfig) (store.Backend, error) {
	return config.OpenBackend(ctx, s)
}

// storeError says which store failed, without its password.
func storeError(s StoreConfig, err error) error { return config.StoreError(s, err) }

// loadCA returns a pool with the system roots plus the PEM file's CAs.
func loadCA(path string) (*x509.CertPool, error) { return config.LoadCA(path) }
