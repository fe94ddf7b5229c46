package events_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd"
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

func checkEvent(t *testing.T, ev events.Event) {
	t.Helper()
	if ev.ID == "" || ev.Type == "" || len(ev.Raw) == 0 {
		t.Fatalf("accepted event lacks id, type or raw: %+v", ev)
	}
	if !strings.HasPrefix(ev.Vault, "https://") {
		t.Fatalf("accepted event has vault %q", ev.Vault)
	}
	if ev.Type != events.TypeVaultAccessPolicyChanged {
		if again, err := cmkd.ParseKeyID(ev.Key.String()); err != nil || again != ev.Key || ev.Key.Vault != ev.Vault {
			t.Fatalf("accepted event has key %q (vault %q): %v", ev.Key, ev.Vault, err)
		}
	}
}
