package main

import (
	"strings"
	"testing"
)

// TestConfigVaultPolicy: the vault policy fields are checked with the rest
// of the config, and the DNS suffixes can come from the environment.
func TestConfigVaultPolicy(t *testing.T) {
	base := func() *Config {
		c := &Config{Store: StoreConfig{DSN: "x.db"}}
		c.setDefaults()
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
