package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestWebhookSettingsReachTheWebhook loads the settings an operator writes
// under sources.webhook and checks the webhook is built with them: a
// setting that parses but is dropped on the way would leave the webhook
// accepting other applications' tokens.
func TestWebhookSettingsReachTheWebhook(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.yaml")
	yaml := strings.Join([]string{
		"store: {driver: sqlite, dsn: " + filepath.Join(t.TempDir(), "s.db") + "}",
		"sources:",
		"  webhook:",
		"    listen: 127.0.0.1:0",
		"    audience: api://cmkd",
		"    issuer: https://login.microsoftonline.com/t/v2.0",
		"    jwks_url: https://login.microsoftonline.com/t/discovery/v2.0/keys",
		"    allowed_applications: [4962773b-9cdb-44cf-a8bf-237846a00ab7]",
		"    max_conns: 7",
		"http: {listen: 127.0.0.1:0, max_conns: 3}",
	}, "\n")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.HTTP.MaxConns != 3 {
		t.Errorf("http.max_conns = %d, want 3", cfg.HTTP.MaxConns)
	}
	d := &deps{cfg: cfg, log: slog.New(slog.DiscardHandler), reg: prometheus.NewRegistry()}
	wc := webhookConfig(d, nil)
	if wc.MaxConns != 7 {
		t.Errorf("webhook MaxConns = %d, want 7", wc.MaxConns)
	}
	if wc.Auth.Entra == nil {
		t.Fatal("webhook built without Entra checks although audience is set")
	}
	if !slices.Equal(wc.Auth.Entra.AllowedApplications, []string{"4962773b-9cdb-44cf-a8bf-237846a00ab7"}) {
		t.Errorf("AllowedApplications = %v", wc.Auth.Entra.AllowedApplications)
	}
}

// TestConfigVaultPolicy: the vault policy fields are checked with the rest
// of the config, and the DNS suffixes can come from the environment.
func TestConfigVaultPolicy(t *testing.T) {
	base := func() *Config {
		c := &Config{Store: StoreConfig{DSN: "x.db"}}
		c.SetDefaults()
		return c
	}
	c := base()
	c.KeyVault.DNSSuffixes = []string{"cn"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "keyvault.dns_suffixes") {
		t.Errorf("a suffix without a dot: %v, want an error naming keyvault.dns_suffixes", err)
	}
	c = base()
	c.KeyVault.Vaults = []string{"http://plain.example.com"}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "keyvault.vaults") {
		t.Errorf("a plain-HTTP vault: %v, want an error naming keyvault.vaults", err)
	}
	c = base()
	env := map[string]string{"CMKD_KEYVAULT_DNS_SUFFIXES": ".vault.azure.cn,.managedhsm.usgovcloudapi.net"}
	if err := applyEnv(c, func(k string) (string, bool) { v, ok := env[k]; return v, ok }); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || len(c.KeyVault.DNSSuffixes) != 2 || vaultPolicy(c.KeyVault).DNSSuffixes[1] != ".managedhsm.usgovcloudapi.net" {
		t.Errorf("suffixes from the environment: %v, %v", c.KeyVault.DNSSuffixes, err)
	}
}
