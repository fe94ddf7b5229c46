package events_test

import (
	"errors"
	"testing"

	"github.com/cmkd-io/cmkd/events"
)

func TestNormalizeKeyURL(t *testing.T) {
	tests := []struct {
		in, key, vault, version string
		bad                     bool
	}{
		{in: "https://myvault.vault.azure.net/keys/k1/0123456789abcdef0123456789abcdef",
			key: "https://myvault.vault.azure.net/keys/k1", vault: "https://myvault.vault.azure.net", version: "0123456789abcdef0123456789abcdef"},
		{in: "HTTPS://MyVault.Vault.Azure.Net:443/keys/K1/", key: "https://myvault.vault.azure.net/keys/K1", vault: "https://myvault.vault.azure.net"},
		{in: " https://myhsm.managedhsm.azure.net/keys/hsm-key ", key: "https://myhsm.managedhsm.azure.net/keys/hsm-key", vault: "https://myhsm.managedhsm.azure.net"},
		{in: "https://127.0.0.1:8443/keys/k/v1", key: "https://127.0.0.1:8443/keys/k", vault: "https://127.0.0.1:8443", version: "v1"},
		{in: "http://myvault.vault.azure.net/keys/k", bad: true},
		{in: "https://myvault.vault.azure.net/secrets/k/v", bad: true},
		{in: "https://myvault.vault.azure.net/keys", bad: true},
		{in: "https://myvault.vault.azure.net/keys/k/v/extra", bad: true},
		{in: "https://myvault.vault.azure.net/keys/k%2Fx", bad: true},
		{in: "https://myvault.vault.azure.net/keys/k?api-version=7.5", bad: true},
		{in: "https://user@myvault.vault.azure.net/keys/k", bad: true},
		{in: "https:///keys/k", bad: true},
		{in: "", bad: true},
	}
	for _, tt := range tests {
		key, vault, version, err := events.NormalizeKeyURL(tt.in)
		if tt.bad {
			if !errors.Is(err, events.ErrBadKeyURL) || !errors.Is(err, events.ErrMalformed) {
				t.Errorf("NormalizeKeyURL(%q) err = %v, want ErrBadKeyURL", tt.in, err)
			}
			continue
		}
		if err != nil || key != tt.key || vault != tt.vault || version != tt.version {
			t.Errorf("NormalizeKeyURL(%q) = %q, %q, %q, %v; want %q, %q, %q", tt.in, key, vault, version, err, tt.key, tt.vault, tt.version)
		}
	}
}
