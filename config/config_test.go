package config_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/config"
)

// TestLoadFileEnvironmentDefaults: Load reads the file, lets CMKD_*
// variables override it, fills in defaults, and refuses unknown fields and
// invalid values naming the field.
func TestLoadFileEnvironmentDefaults(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "cmkd.yaml")
	yaml := "store: {dsn: " + filepath.Join(dir, "cmkd.db") + ", cache_ttl: 1m}\n" +
		"keyvault: {credential: static, token: t, vaults: [https://a.vault.azure.net]}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CMKD_STORE_CACHE_TTL", "2m")
	t.Setenv("CMKD_KEYVAULT_PLATFORM_KEY", "https://a.vault.azure.net/keys/platform")
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.Driver != "sqlite" || c.Store.CacheTTL != 2*time.Minute || c.Instance == "" {
		t.Fatalf("loaded %+v: want driver sqlite (default), cache_ttl 2m (environment), an instance name", c.Store)
	}
	k, err := c.PlatformKey()
	if err != nil || k.String() != "https://a.vault.azure.net/keys/platform" {
		t.Fatalf("PlatformKey() = %v, %v", k, err)
	}
	if p := c.KeyVault.VaultPolicy(); len(p.Vaults) != 1 || p.AllowLoopback {
		t.Fatalf("VaultPolicy() = %+v", p)
	}

	if err := os.WriteFile(path, []byte("store: {dsn: x.db, cache_tll: 1m}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), "cache_tll") {
		t.Fatalf("a misspelt field: %v, want it named", err)
	}
	t.Setenv("CMKD_KEYVAULT_PLATFORM_KEY", "https://a.vault.azure.net/keys/platform/0123456789abcdef0123456789abcdef")
	if err := os.WriteFile(path, []byte("store: {dsn: x.db}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := config.Load(path); err == nil || !strings.Contains(err.Error(), "keyvault.platform_key") {
		t.Fatalf("a versioned platform key: %v, want keyvault.platform_key named", err)
	}
}

// TestWriteLoadRoundTrip: what Write writes, Load reads back, private to
// its owner (it may hold secrets).
func TestWriteLoadRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cmkd.yaml")
	no := false
	in := &config.Config{Instance: "a", Store: config.StoreConfig{Driver: "postgres", DSN: "postgres://db/cmkd", Migrate: &no},
		KeyVault: config.KVConfig{Credential: "static", Token: "t"}}
	if err := config.Write(path, in); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("written file: %v, %v; want mode 0600", fi, err)
	}
	out, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if out.Store.MigratesOnOpen() || !out.Store.Postgres().NoMigrate || out.Store.SchemaName() != "cmkd" {
		t.Fatalf("store read back: %+v", out.Store)
	}
}

// TestAPIRefusesAnonymousOutsideTheEmulators: the data API serves nobody
// unauthenticated outside `cmkd dev`, and refuses to start with no way to
// authenticate callers.
func TestAPIRefusesAnonymousOutsideTheEmulators(t *testing.T) {
	dir := t.TempDir()
	base := "store: {dsn: " + filepath.Join(dir, "cmkd.db") + "}\nkeyvault: {credential: static, token: t%s}\napi: {listen: '127.0.0.1:0'%s}\n"
	for _, c := range []struct {
		name, kv, api, wantErr string
	}{
		{"anonymous against Azure", "", ", anonymous: true", "api.anonymous"},
		{"no authentication", "", "", "api.auth"},
		{"anonymous with the emulators", ", emulator: true", ", anonymous: true", ""},
		{"Entra tokens", "", ", auth: {entra: {issuer: 'https://login.example/t/v2.0', audience: 'api://cmkd', jwks_url: 'https://login.example/keys'}}", ""},
	} {
		path := filepath.Join(dir, "cmkd.yaml")
		if err := os.WriteFile(path, []byte(fmt.Sprintf(base, c.kv, c.api)), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := config.Load(path)
		switch {
		case c.wantErr == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("%s: %v, want an error naming %s", c.name, err, c.wantErr)
		}
	}
}
