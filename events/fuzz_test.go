package events_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd/events"
)

func addSamples(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzDecode checks that no input panics, that every failure is
// ErrMalformed, and that every accepted event is well-formed.
func FuzzDecode(f *testing.F) {
	addSamples(f)
	f.Add([]byte(`[]`))
	f.Add([]byte(`[{"specversion":"1.0","id":"a","source":"s","type":"io.cmkd.probe","subject":"https://v/keys/k"}]`))
	d := events.NewDecoder(events.DecoderConfig{AllowedVaults: []string{"sample-kv.vault.azure.net", "v"}})
	f.Fuzz(func(t *testing.T, body []byte) {
		res, err := d.Decode(body)
		if err != nil {
			if !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("error is not ErrMalformed: %v", err)
			}
			return
		}
		for _, ev := range res.Events {
			checkEvent(t, ev)
		}
	})
}

func FuzzDecodeCloudEvent(f *testing.F) {
	addSamples(f)
	f.Add([]byte(`{"specversion":"1.0","id":"p","source":"s","type":"io.cmkd.probe","data_base64":"e30="}`))
	d := events.NewDecoder(events.DecoderConfig{})
	f.Fuzz(func(t *testing.T, body []byte) {
		ev, relevant, err := d.DecodeCloudEvent(body)
		if err != nil {
			if !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("error is not ErrMalformed: %v", err)
			}
			return
		}
		if relevant {
			checkEvent(t, ev)
		}
	})
}

func FuzzNormalizeKeyURL(f *testing.F) {
	for _, s := range []string{
		"https://sample-kv.vault.azure.net/keys/tenant-key/ee059b2bb5bc48398a53b168c6cdcb10",
		"HTTPS://Sample-KV.vault.azure.net:443/keys/tenant-key/",
		"https://myhsm.managedhsm.azure.net/keys/k",
		"https://127.0.0.1:8443/keys/k/v",
		"https://sample-kv.vault.azure.net/secrets/newsecret/ee059b2bb5bc48398a53b168c6cdcb10",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		key, vault, version, err := events.NormalizeKeyURL(id)
		if err != nil {
			if !errors.Is(err, events.ErrBadKeyURL) {
				t.Fatalf("error is not ErrBadKeyURL: %v", err)
			}
			return
		}
		// Normalising is idempotent: the result parses to itself.
		k2, v2, _, err := events.NormalizeKeyURL(key)
		if err != nil || k2 != key || v2 != vault {
			t.Fatalf("NormalizeKeyURL(%q) = %q, %q; again = %q, %q, %v", id, key, vault, k2, v2, err)
		}
		if version != "" {
			if k3, _, v3, err := events.NormalizeKeyURL(key + "/" + version); err != nil || k3 != key || v3 != version {
				t.Fatalf("key %q with version %q does not round-trip: %q %q %v", key, version, k3, v3, err)
			}
		}
	})
}

func checkEvent(t *testing.T, ev events.Event) {
	t.Helper()
	if ev.ID == "" || ev.Type == "" || len(ev.Raw) == 0 {
		t.Fatalf("accepted event lacks id, type or raw: %+v", ev)
	}
	if !strings.HasPrefix(ev.Vault, "https://") {
		t.Fatalf("accepted event has vault %q", ev.Vault)
	}
	if ev.Type != events.TypeVaultAccessPolicyChanged {
		if key, vault, _, err := events.NormalizeKeyURL(ev.KeyURL); err != nil || key != ev.KeyURL || vault != ev.Vault {
			t.Fatalf("accepted event has key URL %q (vault %q): %v", ev.KeyURL, ev.Vault, err)
		}
	}
}
