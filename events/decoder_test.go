package events_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events"
)

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecodeSamples(t *testing.T) {
	const vault = "https://sample-kv.vault.azure.net"
	const key = vault + "/keys/tenant-key"
	tests := []struct {
		file    string
		want    []events.Event // Raw not compared
		ignored int
		dropped int
	}{
		{file: "eg-secret-new-version-docs.json", ignored: 1},
		{file: "ce-secret-new-version-docs.json", ignored: 1},
		{file: "eg-key-new-version.json", want: []events.Event{{
			ID: "7a3e4b1c-95a7-4e7c-8299-2eb17ee9ad64", Type: events.TypeKeyNewVersionCreated,
			Time:  time.Date(2019, 7, 25, 1, 8, 33, 103673600, time.UTC),
			Vault: vault, Key: cmkd.MustParseKeyID(key).At("ee059b2bb5bc48398a53b168c6cdcb10"),
			NotBefore: time.Unix(1559081980, 0).UTC(), Expires: time.Unix(1559082102, 0).UTC(),
		}}},
		{file: "ce-key-new-version.json", want: []events.Event{{
			ID: "7a3e4b1c-95a7-4e7c-8299-2eb17ee9ad64", Type: events.TypeKeyNewVersionCreated,
			Time:  time.Date(2019, 7, 25, 1, 8, 33, 103673600, time.UTC),
			Vault: vault, Key: cmkd.MustParseKeyID(key).At("ee059b2bb5bc48398a53b168c6cdcb10"),
			NotBefore: time.Unix(1559081980, 0).UTC(), Expires: time.Unix(1559082102, 0).UTC(),
		}}},
		{file: "ce-key-near-expiry-camel.json", want: []events.Event{{
			ID: "b2f1c0de-0000-4000-8000-000000000001", Type: events.TypeKeyNearExpiry,
			Time:  time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC),
			Vault: vault, Key: cmkd.MustParseKeyID(key).At("0123456789abcdef0123456789abcdef"),
			NotBefore: time.Unix(1706745600, 0).UTC(), Expires: time.Unix(1711929600, 0).UTC(),
		}}},
		{file: "eg-key-expired.json", want: []events.Event{{
			ID: "c3a2d1e0-0000-4000-8000-000000000002", Type: events.TypeKeyExpired,
			Time:  time.Date(2024, 3, 31, 0, 0, 0, 0, time.UTC),
			Vault: vault, Key: cmkd.MustParseKeyID(key).At("0123456789abcdef0123456789abcdef"),
			Expires: time.Unix(1711843200, 0).UTC(),
		}}},
		{file: "eg-vault-access-policy-changed.json", want: []events.Event{{
			ID: "d4b3e2f1-0000-4000-8000-000000000003", Type: events.TypeVaultAccessPolicyChanged,
			Time: time.Date(2024, 4, 2, 8, 30, 0, 123456700, time.UTC), Vault: vault,
		}}},
		{file: "ce-probe.json", want: []events.Event{{
			ID: "probe-0001", Type: events.TypeProbe, Time: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
			Vault: vault, Key: cmkd.MustParseKeyID(key),
		}}},
		{file: "ce-batch-mixed.json", ignored: 3, dropped: 1, want: []events.Event{{
			ID: "m-1", Type: events.TypeKeyNewVersionCreated, Time: time.Date(2024, 5, 1, 10, 0, 0, 0, time.UTC),
			Vault: vault, Key: cmkd.MustParseKeyID(key).At("11111111111111111111111111111111"),
		}}},
	}
	d := events.NewDecoder(events.DecoderConfig{AllowedVaults: []string{"Sample-KV.vault.azure.net"}})
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			res, err := d.Decode(readSample(t, tt.file))
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if res.Ignored != tt.ignored || res.Dropped != tt.dropped {
				t.Errorf("ignored, dropped = %d, %d; want %d, %d", res.Ignored, res.Dropped, tt.ignored, tt.dropped)
			}
			if len(res.Events) != len(tt.want) {
				t.Fatalf("got %d events, want %d: %+v", len(res.Events), len(tt.want), res.Events)
			}
			for i, got := range res.Events {
				if len(got.Raw) == 0 {
					t.Errorf("event %d: Raw is empty", i)
				}
				got.Raw = nil
				if !eventEqual(got, tt.want[i]) {
					t.Errorf("event %d:\n got %+v\nwant %+v", i, got, tt.want[i])
				}
			}
		})
	}
}

func eventEqual(a, b events.Event) bool {
	return a.ID == b.ID && a.Type == b.Type && a.Time.Equal(b.Time) && a.Vault == b.Vault &&
		a.Key == b.Key && a.Expires.Equal(b.Expires) && a.NotBefore.Equal(b.NotBefore)
}

func TestDecodeKeepsRawEventForAudit(t *testing.T) {
	d := events.NewDecoder(events.DecoderConfig{})
	res, err := d.Decode(readSample(t, "ce-batch-mixed.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Events) != 2 {
		t.Fatalf("got %d events, want 2 (no allow-list)", len(res.Events))
	}
	for _, ev := range res.Events {
		if !strings.Contains(string(ev.Raw), `"id": "`+ev.ID+`"`) || strings.HasPrefix(string(ev.Raw), "[") {
			t.Errorf("Raw of %s is not the single event as delivered: %s", ev.ID, ev.Raw)
		}
	}
}

func TestDecodeMalformed(t *testing.T) {
	ce := func(data string) string {
		return `{"specversion":"1.0","id":"x","source":"s","type":"Microsoft.KeyVault.KeyNewVersionCreated","data":` + data + `}`
	}
	tests := []struct {
		name, body, wantInErr string
	}{
		{"empty", "  ", "empty body"},
		{"not json", "hello", "neither a JSON object nor an array"},
		{"broken array", `[{"id":1`, "not a JSON array"},
		{"no schema", `{"id":"x","type":"t"}`, "neither a CloudEvent"},
		{"old specversion", `{"specversion":"0.3","id":"x","source":"s","type":"t"}`, `"specversion"`},
		{"no source", `{"specversion":"1.0","id":"x","type":"t"}`, `"source": missing`},
		{"no id", `{"eventType":"Microsoft.KeyVault.KeyExpired","data":{}}`, `"id": missing`},
		{"id not string", `{"specversion":"1.0","id":7,"source":"s","type":"t"}`, `"id": not a string`},
		{"bad time", `{"specversion":"1.0","id":"x","source":"s","type":"t","time":"yesterday"}`, `"time"`},
		{"duplicate fold", `{"specversion":"1.0","id":"x","ID":"y","source":"s","type":"t"}`, "appears twice"},
		{"no data", ce(`null`), `"data": missing`},
		{"data not object", ce(`"text"`), "data: not a JSON object"},
		{"no key id", ce(`{"VaultName":"v"}`), `"id": missing`},
		{"http key", ce(`{"Id":"http://v.vault.azure.net/keys/k/1"}`), "scheme must be https"},
		{"secret id in key event", ce(`{"Id":"https://v.vault.azure.net/secrets/k/1"}`), "/keys/"},
		{"bad exp", ce(`{"Id":"https://v.vault.azure.net/keys/k/1","EXP":"soon"}`), `"exp"`},
		{"bad probe", `{"specversion":"1.0","id":"x","source":"s","type":"io.cmkd.probe","data":{"key":"https://v/keys/a b"}}`, "key name must be"},
		{"probe without key", `{"specversion":"1.0","id":"x","source":"s","type":"io.cmkd.probe"}`, "no key URL"},
		{"second of batch", `[` + ce(`{"Id":"https://v.vault.azure.net/keys/k"}`) + `,` + ce(`{}`) + `]`, "event 1:"},
	}
	d := events.NewDecoder(events.DecoderConfig{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := d.Decode([]byte(tt.body))
			if !errors.Is(err, events.ErrMalformed) {
				t.Fatalf("err = %v, want ErrMalformed", err)
			}
			if !strings.Contains(err.Error(), tt.wantInErr) {
				t.Errorf("err = %q, want it to mention %q", err, tt.wantInErr)
			}
			if len(res.Events) != 0 {
				t.Errorf("malformed body returned events: %+v", res.Events)
			}
		})
	}
}

func TestDecodeLimits(t *testing.T) {
	d := events.NewDecoder(events.DecoderConfig{})
	big := `{"specversion":"1.0","id":"x","source":"s","type":"t","data":"` + strings.Repeat("a", events.MaxBodyBytes) + `"}`
	if _, err := d.Decode([]byte(big)); !errors.Is(err, events.ErrMalformed) || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized body: err = %v", err)
	}
	one := `{"specversion":"1.0","id":"x","source":"s","type":"t"}`
	batch := "[" + strings.Repeat(one+",", events.MaxBatchCount) + one + "]"
	if _, err := d.Decode([]byte(batch)); !errors.Is(err, events.ErrMalformed) || !strings.Contains(err.Error(), "batch of 5001") {
		t.Errorf("oversized batch: err = %v", err)
	}
	batch = "[" + strings.Repeat(one+",", events.MaxBatchCount-1) + one + "]"
	res, err := d.Decode([]byte(batch))
	if err != nil || res.Ignored != events.MaxBatchCount {
		t.Errorf("batch at the limit: ignored %d, err %v", res.Ignored, err)
	}
}

func TestDecodeCloudEvent(t *testing.T) {
	d := events.NewDecoder(events.DecoderConfig{AllowedVaults: []string{"https://sample-kv.vault.azure.net/"}})
	ev, relevant, err := d.DecodeCloudEvent(readSample(t, "ce-key-near-expiry-camel.json"))
	if err != nil || !relevant || ev.Key.URL() != "https://sample-kv.vault.azure.net/keys/tenant-key" {
		t.Fatalf("got %+v, %v, %v", ev, relevant, err)
	}
	// A pull delivery re-encoded by the SDK may carry its JSON data in base64.
	b64 := `{"specversion":"1.0","id":"p","source":"s","type":"io.cmkd.probe","data_base64":"eyJrZXkiOiJodHRwczovL3NhbXBsZS1rdi52YXVsdC5henVyZS5uZXQva2V5cy90ZW5hbnQta2V5In0="}`
	if ev, relevant, err = d.DecodeCloudEvent([]byte(b64)); err != nil || !relevant || ev.Type != events.TypeProbe {
		t.Errorf("data_base64: got %+v, %v, %v", ev, relevant, err)
	}
	other := `{"specversion":"1.0","id":"p","source":"s","type":"io.cmkd.probe","subject":"https://evil.example/keys/k"}`
	if _, relevant, err = d.DecodeCloudEvent([]byte(other)); err != nil || relevant {
		t.Errorf("probe of a vault not allowed: relevant %v, err %v", relevant, err)
	}
	if _, _, err = d.DecodeCloudEvent(readSample(t, "eg-key-expired.json")); !errors.Is(err, events.ErrMalformed) {
		t.Errorf("Event Grid schema given as CloudEvent: err = %v", err)
	}
}

func TestDecodeCountsOutcomes(t *testing.T) {
	reg := prometheus.NewRegistry()
	d := events.NewDecoder(events.DecoderConfig{AllowedVaults: []string{"sample-kv.vault.azure.net"}, Registerer: reg})
	events.NewDecoder(events.DecoderConfig{Registerer: reg}) // a second decoder shares the series
	if _, err := d.Decode(readSample(t, "ce-batch-mixed.json")); err != nil {
		t.Fatal(err)
	}
	_, _ = d.Decode([]byte("nope"))
	for _, c := range []struct {
		typ, outcome string
		want         float64
	}{
		{events.TypeKeyNewVersionCreated, "accepted", 1},
		{"other", "ignored", 3},
		{events.TypeKeyExpired, "dropped", 1},
		{"other", "malformed", 1},
	} {
		got := counterValue(t, reg, c.typ, c.outcome)
		if got != c.want {
			t.Errorf("cmkd_events_decoded_total{type=%q,outcome=%q} = %v, want %v", c.typ, c.outcome, got, c.want)
		}
	}
}

func counterValue(t *testing.T, reg *prometheus.Registry, typ, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cmkd_events_decoded_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["type"] == typ && labels["outcome"] == outcome {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series type=%q outcome=%q", typ, outcome)
	return 0
}
