package kek

import (
	"errors"
	"testing"
)

func TestParseKeyID(t *testing.T) {
	const ver = "0123456789abcdef0123456789abcdef"
	tests := []struct {
		in   string
		want KeyID
	}{
		{"https://v.vault.azure.net/keys/k1/" + ver, KeyID{"https://v.vault.azure.net", "k1", ver}},
		{"https://v.vault.azure.net/keys/k1", KeyID{"https://v.vault.azure.net", "k1", ""}},
		{"https://v.vault.azure.net/keys/k1/", KeyID{"https://v.vault.azure.net", "k1", ""}},
		{"https://v.vault.azure.net/keys/k1/" + ver + "/", KeyID{"https://v.vault.azure.net", "k1", ver}},
		{"HTTPS://V.Vault.Azure.NET/keys/Tenant-A", KeyID{"https://v.vault.azure.net", "Tenant-A", ""}},
		{"https://127.0.0.1:8443/keys/k", KeyID{"https://127.0.0.1:8443", "k", ""}},
		{"https://v.vault.azure.net:443/keys/k", KeyID{"https://v.vault.azure.net", "k", ""}},
		{"https://[::1]:8443/keys/k/ABC", KeyID{"https://[::1]:8443", "k", "ABC"}},
	}
	for _, tt := range tests {
		got, err := ParseKeyID(tt.in)
		if err != nil {
			t.Errorf("ParseKeyID(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseKeyID(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseKeyIDRejects(t *testing.T) {
	long := make([]byte, 128)
	for i := range long {
		long[i] = 'a'
	}
	for _, in := range []string{
		"", "garbage", "http://v.vault.azure.net/keys/k",
		"https:///keys/k", "https://v.vault.azure.net/secrets/k",
		"https://v.vault.azure.net/keys/", "https://v.vault.azure.net/keys/k_1",
		"https://v.vault.azure.net/keys/k/v-1", "https://v.vault.azure.net/keys/k/v/extra",
		"https://v.vault.azure.net/keys/k?api-version=7.4", "https://v.vault.azure.net/keys/k#f",
		"https://user@v.vault.azure.net/keys/k", "https://v.vault.azure.net:0/keys/k",
		"https://v.vault.azure.net:99999/keys/k", "https://v.vault.azure.net:/keys/k",
		"https://v.vault.azure.net/keys/a%2Fb", "https://v.vault.azure.net/keys/" + string(long),
		"https://v.vault.azure.net/keys//v",
	} {
		if _, err := ParseKeyID(in); !errors.Is(err, ErrInvalidKeyID) {
			t.Errorf("ParseKeyID(%q) = %v, want ErrInvalidKeyID", in, err)
		}
	}
}

func TestKeyIDStrings(t *testing.T) {
	k := KeyID{Vault: "https://v.vault.azure.net", Name: "k", Version: "abc"}
	if got := k.KeyURL(); got != "https://v.vault.azure.net/keys/k" {
		t.Errorf("KeyURL = %q", got)
	}
	if got := k.String(); got != "https://v.vault.azure.net/keys/k/abc" {
		t.Errorf("String = %q", got)
	}
	k.Version = ""
	if got := k.String(); got != k.KeyURL() {
		t.Errorf("versionless String = %q", got)
	}
}

func FuzzParseKeyID(f *testing.F) {
	for _, s := range []string{
		"https://v.vault.azure.net/keys/k1/0123456789abcdef0123456789abcdef",
		"https://v.vault.azure.net/keys/k1",
		"https://v.vault.azure.net/keys/k1/",
		"https://127.0.0.1:8443/keys/k",
		"HTTPS://V.VAULT.AZURE.NET/keys/K",
		"https://[::1]:1/keys/k/v",
		"garbage",
		"https://%41/keys/k",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKeyID(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidKeyID) {
				t.Fatalf("error %v does not wrap ErrInvalidKeyID", err)
			}
			return
		}
		// A parsed id must print to a canonical form that parses to itself.
		again, err := ParseKeyID(k.String())
		if err != nil || again != k {
			t.Fatalf("round trip of %q: %+v -> %q -> %+v, %v", s, k, k.String(), again, err)
		}
	})
}
