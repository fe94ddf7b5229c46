package cmkd_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd"
)

func TestParseKeyID(t *testing.T) {
	const ver = "0123456789abcdef0123456789abcdef"
	const vault = "https://v.vault.azure.net"
	tests := []struct {
		name, in string
		want     cmkd.KeyID
	}{
		{"versioned", "https://v.vault.azure.net/keys/k1/" + ver, cmkd.KeyID{vault, "k1", ver}},
		{"versionless", "https://v.vault.azure.net/keys/k1", cmkd.KeyID{vault, "k1", ""}},
		{"trailing slash", "https://v.vault.azure.net/keys/k1/", cmkd.KeyID{vault, "k1", ""}},
		{"versioned, trailing slash", "https://v.vault.azure.net/keys/k1/" + ver + "/", cmkd.KeyID{vault, "k1", ver}},
		{"default port", "https://v.vault.azure.net:443/keys/k1", cmkd.KeyID{vault, "k1", ""}},
		{"upper-case scheme and host", "HTTPS://V.Vault.Azure.NET/keys/k1", cmkd.KeyID{vault, "k1", ""}},
		{"upper-case key name", "https://v.vault.azure.net/keys/Tenant-A", cmkd.KeyID{vault, "tenant-a", ""}},
		{"upper-case version", "https://v.vault.azure.net/keys/k1/0123456789ABCDEF0123456789ABCDEF", cmkd.KeyID{vault, "k1", ver}},
		{"all at once", " HTTPS://V.VAULT.AZURE.NET:443/keys/CMK/ ", cmkd.KeyID{vault, "cmk", ""}},
		{"managed hsm", "https://myhsm.managedhsm.azure.net/keys/hsm-key/" + ver,
			cmkd.KeyID{"https://myhsm.managedhsm.azure.net", "hsm-key", ver}},
		{"sovereign cloud", "https://v.vault.azure.cn/keys/k", cmkd.KeyID{"https://v.vault.azure.cn", "k", ""}},
		{"other port kept", "https://127.0.0.1:8443/keys/k", cmkd.KeyID{"https://127.0.0.1:8443", "k", ""}},
		{"ipv6", "https://[::1]:8443/keys/k/ABC", cmkd.KeyID{"https://[::1]:8443", "k", "abc"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cmkd.ParseKeyID(tt.in)
			if err != nil {
				t.Fatalf("ParseKeyID(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseKeyID(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			// The canonical string parses to itself.
			again, err := cmkd.ParseKeyID(got.String())
			if err != nil || again != got {
				t.Fatalf("ParseKeyID(%q) = %+v, %v; want it unchanged", got.String(), again, err)
			}
		})
	}
}

func TestParseKeyIDRejects(t *testing.T) {
	tests := []struct{ name, in, says string }{
		{"empty", "", "scheme"},
		{"not a url", "garbage", "scheme"},
		{"http", "http://v.vault.azure.net/keys/k", "scheme must be https"},
		{"other scheme", "ftp://v.vault.azure.net/keys/k", "scheme must be https"},
		{"no host", "https:///keys/k", "no host"},
		{"user info", "https://user:pw@v.vault.azure.net/keys/k", "user info"},
		{"query", "https://v.vault.azure.net/keys/k?api-version=7.4", "query"},
		{"empty query", "https://v.vault.azure.net/keys/k?", "query"},
		{"fragment", "https://v.vault.azure.net/keys/k#f", "query or fragment"},
		{"secret, not key", "https://v.vault.azure.net/secrets/k", "path"},
		{"no name", "https://v.vault.azure.net/keys/", "key name"},
		{"vault only", "https://v.vault.azure.net", "path"},
		{"extra segment", "https://v.vault.azure.net/keys/k/v/extra", "path"},
		{"empty name", "https://v.vault.azure.net/keys//v", "key name"},
		{"underscore in name", "https://v.vault.azure.net/keys/k_1", "key name"},
		{"escaped slash", "https://v.vault.azure.net/keys/a%2Fb", "key name"},
		{"name too long", "https://v.vault.azure.net/keys/" + strings.Repeat("a", 128), "key name"},
		{"dash in version", "https://v.vault.azure.net/keys/k/v-1", "key version"},
		{"port 0", "https://v.vault.azure.net:0/keys/k", "port"},
		{"port too big", "https://v.vault.azure.net:99999/keys/k", "port"},
		{"empty port", "https://v.vault.azure.net:/keys/k", "port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cmkd.ParseKeyID(tt.in)
			if !errors.Is(err, cmkd.ErrInvalidKeyID) || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("ParseKeyID(%q) = %v, want ErrInvalidKeyID saying %q", tt.in, err, tt.says)
			}
		})
	}
}

func TestKeyIDDerived(t *testing.T) {
	k := cmkd.MustParseKeyID("https://V.vault.azure.net:443/keys/CMK/ABC")
	checks := []struct{ what, got, want string }{
		{"String", k.String(), "https://v.vault.azure.net/keys/cmk/abc"},
		{"URL", k.URL(), "https://v.vault.azure.net/keys/cmk"},
		{"Vault", k.Vault, "https://v.vault.azure.net"},
		{"Host", k.Host(), "v.vault.azure.net"},
		{"Versionless", k.Versionless().String(), "https://v.vault.azure.net/keys/cmk"},
		{"At", k.Versionless().At("DEF").String(), "https://v.vault.azure.net/keys/cmk/def"},
		{"LeaseName", k.LeaseName(), "key:https://v.vault.azure.net/keys/cmk"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.what, c.got, c.want)
		}
	}
	// Every spelling of a key, every version of it, shares one lease.
	other := cmkd.MustParseKeyID("https://v.vault.azure.net/keys/cmk/")
	if other.LeaseName() != k.LeaseName() || other != k.Versionless() {
		t.Errorf("two spellings of one key differ: %+v and %+v", other, k.Versionless())
	}
	if k.ManagedHSM() || !cmkd.MustParseKeyID("https://h.managedhsm.azure.net:443/keys/k").ManagedHSM() {
		t.Error("ManagedHSM wrong")
	}
	if !(cmkd.KeyID{}).IsZero() || k.IsZero() || (cmkd.KeyID{}).String() != "" {
		t.Error("IsZero wrong")
	}
}

func TestKeyIDText(t *testing.T) {
	var k cmkd.KeyID
	if err := k.UnmarshalText([]byte("https://V.vault.azure.net/keys/K/")); err != nil {
		t.Fatal(err)
	}
	b, _ := k.MarshalText()
	if string(b) != "https://v.vault.azure.net/keys/k" {
		t.Fatalf("MarshalText = %s", b)
	}
	if err := k.UnmarshalText([]byte("http://x/keys/k")); !errors.Is(err, cmkd.ErrInvalidKeyID) {
		t.Fatalf("UnmarshalText(http) = %v", err)
	}
}

func TestParseVault(t *testing.T) {
	for in, want := range map[string]string{
		"myvault.vault.azure.net":                     "https://myvault.vault.azure.net",
		"https://MyVault.vault.azure.net/":            "https://myvault.vault.azure.net",
		"https://myvault.vault.azure.net:443":         "https://myvault.vault.azure.net",
		"https://myvault.vault.azure.net/keys/k/v1":   "https://myvault.vault.azure.net",
		"127.0.0.1:8443":                              "https://127.0.0.1:8443",
		" https://myhsm.managedhsm.azure.net/keys/k ": "https://myhsm.managedhsm.azure.net",
	} {
		got, err := cmkd.ParseVault(in)
		if err != nil || got != want {
			t.Errorf("ParseVault(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"http://v.vault.azure.net", "https://u@v.vault.azure.net", "https://v.vault.azure.net?x=1", ""} {
		if _, err := cmkd.ParseVault(bad); !errors.Is(err, cmkd.ErrInvalidKeyID) {
			t.Errorf("ParseVault(%q) = %v, want ErrInvalidKeyID", bad, err)
		}
	}
}

func FuzzParseKeyID(f *testing.F) {
	f.Add("https://v.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef")
	f.Add("HTTPS://V.vault.azure.net:443/keys/K/")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := cmkd.ParseKeyID(s)
		if err != nil {
			if !errors.Is(err, cmkd.ErrInvalidKeyID) {
				t.Fatalf("error %v does not wrap ErrInvalidKeyID", err)
			}
			return
		}
		// Canonical: parsing the string form gives the same id back, and
		// the derived forms are lower-case https URLs.
		again, err := cmkd.ParseKeyID(k.String())
		if err != nil || again != k {
			t.Fatalf("ParseKeyID(%q) = %+v; its string %q parses to %+v, %v", s, k, k.String(), again, err)
		}
		if k.String() != strings.ToLower(k.String()) || !strings.HasPrefix(k.URL(), "https://") || strings.Contains(k.Vault, ":443") {
			t.Fatalf("not canonical: %q", k.String())
		}
	})
}
