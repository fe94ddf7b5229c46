package cmkd_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
)

var testKey = cmkd.MustParseKeyID("https://v.vault.azure.net/keys/cmk")

func TestStatusEventRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ev := cmkd.StatusEvent{
		ID: "e1", Kind: cmkd.KindRewrapCompleted, Tenant: "acme", Time: at, Source: "cmkd/dev",
		Key: testKey, Version: "v2", PreviousVersion: "v1", Cause: "evt-9",
		DEKs: &cmkd.DEKCounts{Total: 3, Rewrapped: 2, Duration: 1500 * time.Millisecond},
	}
	body, err := ev.MarshalCloudEvent()
	if err != nil {
		t.Fatal(err)
	}
	// The wire form is the status contract (README): check it as a subscriber
	// in another language would read it.
	var doc struct {
		SpecVersion, ID, Source, Type, Subject, DataContentType, DataSchema string
		Data                                                                map[string]any
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"tenant": "acme", "vault": "https://v.vault.azure.net", "key": testKey.URL(), "version": "v2",
		"previous_version": "v1", "deks_total": 3.0, "deks_rewrapped": 2.0, "duration_ms": 1500.0, "cause": "evt-9"}
	if doc.SpecVersion != "1.0" || doc.Type != "io.cmkd.rewrap.completed" || doc.DataSchema != cmkd.StatusDataSchema || doc.Subject != "acme" || doc.Source != "cmkd/dev" ||
		doc.DataContentType != "application/json" || len(doc.Data) != len(want) {
		t.Fatalf("document %s", body)
	}
	for k, v := range want {
		if doc.Data[k] != v {
			t.Errorf("data[%s] = %v, want %v", k, doc.Data[k], v)
		}
	}
	got, err := cmkd.ParseStatusEvent(body)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Kind != ev.Kind || got.Tenant != ev.Tenant || !got.Time.Equal(at) || got.Source != ev.Source ||
		got.Key != ev.Key || got.Version != "v2" || got.PreviousVersion != "v1" || got.Cause != "evt-9" ||
		got.DEKs == nil || *got.DEKs != *ev.DEKs {
		t.Fatalf("round trip: %+v", got)
	}
	if got.Subject() != "cmkd.status.acme.rewrap.completed" || got.Vault() != "https://v.vault.azure.net" {
		t.Fatalf("subject %q vault %q", got.Subject(), got.Vault())
	}
}

// The four fields every event carries are present even when empty; the
// per-kind ones only where the kind has them.
func TestStatusDataAlwaysHasTheCommonFields(t *testing.T) {
	b, err := cmkd.StatusEvent{ID: "1", Kind: cmkd.KindSealed, Tenant: "acme", Key: testKey, Reason: cmkd.ReasonDisabled}.MarshalData()
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"tenant", "vault", "key", "version", "reason"} {
		if _, ok := m[k]; !ok {
			t.Errorf("data lacks %q: %s", k, b)
		}
	}
	for _, k := range []string{"deks_total", "duration_ms", "expires", "previous_version"} {
		if _, ok := m[k]; ok {
			t.Errorf("data has %q for a sealed event: %s", k, b)
		}
	}
}

func TestParseStatusEventRejects(t *testing.T) {
	for _, bad := range []string{
		`{`,
		`{"specversion":"1.0","id":"","type":"io.cmkd.x","subject":"t"}`,
		`{"specversion":"1.0","id":"a","type":"other","subject":"t"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.","subject":"t"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":""}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":"a.b"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed.*","subject":"t"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":"t","data":"text"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":"t","data":{"tenant":"other"}}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":"t","pad":"` + strings.Repeat("x", cmkd.MaxStatusEventBytes) + `"}`,
	} {
		if _, err := cmkd.ParseStatusEvent([]byte(bad)); !errors.Is(err, cmkd.ErrInvalidStatusEvent) {
			t.Errorf("ParseStatusEvent(%.80s) = %v, want ErrInvalidStatusEvent", bad, err)
		}
	}
}

// The dataschema is the contract's version: an event of this version, or
// one written before events named theirs, is read; one of another version
// is refused rather than read with meanings it may no longer have.
func TestParseStatusEventReadsOnlyItsContractVersion(t *testing.T) {
	if cmkd.StatusDataSchema != "urn:cmkd:status:v1" {
		t.Fatalf("StatusDataSchema = %q: a new contract version needs a migration note and a major version (CHANGELOG.md)", cmkd.StatusDataSchema)
	}
	const doc = `{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":"t"%s,"data":{"tenant":"t","reason":"disabled"}}`
	for _, c := range []struct {
		schema string
		ok     bool
	}{
		{"", true},
		{`,"dataschema":"urn:cmkd:status:v1"`, true},
		{`,"dataschema":"urn:cmkd:status:v2"`, false},
		{`,"dataschema":"https://example.com/other"`, false},
	} {
		ev, err := cmkd.ParseStatusEvent([]byte(fmt.Sprintf(doc, c.schema)))
		switch {
		case c.ok && (err != nil || ev.Reason != "disabled"):
			t.Errorf("dataschema %s: %+v, %v; want it read", c.schema, ev, err)
		case !c.ok && !errors.Is(err, cmkd.ErrInvalidStatusEvent):
			t.Errorf("dataschema %s: %v, want ErrInvalidStatusEvent", c.schema, err)
		case !c.ok && !strings.Contains(err.Error(), "urn:cmkd:status:v1"):
			t.Errorf("dataschema %s: %v does not say which version this reader knows", c.schema, err)
		}
	}
}

func TestMarshalRefusesWhatWouldChangeTheSubject(t *testing.T) {
	for _, ev := range []cmkd.StatusEvent{
		{ID: "1", Kind: cmkd.KindSealed, Tenant: "a.b"},
		{ID: "1", Kind: cmkd.KindSealed, Tenant: "*"},
		{ID: "1", Kind: "sealed.>", Tenant: "acme"},
		{ID: "1", Kind: "", Tenant: "acme"},
		{ID: "", Kind: cmkd.KindSealed, Tenant: "acme"},
	} {
		if _, err := ev.MarshalCloudEvent(); !errors.Is(err, cmkd.ErrInvalidStatusEvent) {
			t.Errorf("MarshalCloudEvent(%+v) = %v, want ErrInvalidStatusEvent", ev, err)
		}
	}
}

func TestKindsAreSubjectTokens(t *testing.T) {
	for _, k := range cmkd.Kinds() {
		ev := cmkd.StatusEvent{ID: "1", Kind: k, Tenant: "acme"}
		if err := ev.Validate(); err != nil {
			t.Errorf("kind %q: %v", k, err)
		}
	}
}

func TestValidateTenantID(t *testing.T) {
	for _, ok := range []string{"acme", "A-b_9", strings.Repeat("x", 64)} {
		if err := cmkd.ValidateTenantID(ok); err != nil {
			t.Errorf("ValidateTenantID(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", ">", "a b", strings.Repeat("x", 65), "é"} {
		if err := cmkd.ValidateTenantID(bad); !errors.Is(err, cmkd.ErrInvalidTenant) {
			t.Errorf("ValidateTenantID(%q) = %v, want ErrInvalidTenant", bad, err)
		}
	}
}

func FuzzParseStatusEvent(f *testing.F) {
	good, err := cmkd.StatusEvent{ID: "1", Kind: cmkd.KindSealed, Tenant: "acme", Time: time.Unix(0, 0),
		Key: testKey, Reason: cmkd.ReasonDisabled}.MarshalCloudEvent()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"io.cmkd.unsealed","subject":"t","data":null}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"io.cmkd.a.>","subject":"t"}`))
	f.Add([]byte(`{"specversion":"0.3"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := cmkd.ParseStatusEvent(b)
		if err != nil {
			if !errors.Is(err, cmkd.ErrInvalidStatusEvent) {
				t.Fatalf("error %v does not wrap ErrInvalidStatusEvent", err)
			}
			return
		}
		// What a reader relies on: an event it can put back into a subject,
		// and that re-encodes to a document that reads the same.
		if err := ev.Validate(); err != nil {
			t.Fatalf("parsed an invalid event: %v", err)
		}
		again, err := ev.MarshalCloudEvent()
		if err != nil {
			t.Fatal(err)
		}
		ev2, err := cmkd.ParseStatusEvent(again)
		if err != nil || ev2.ID != ev.ID || ev2.Kind != ev.Kind || ev2.Tenant != ev.Tenant || !ev2.Time.Equal(ev.Time) || ev2.Key != ev.Key {
			t.Fatalf("re-encoded %s parses to %+v, %v", again, ev2, err)
		}
	})
}

// Tenant ids become NATS subject tokens: an accepted id has no byte a
// subject would read as syntax.
func FuzzValidateTenantID(f *testing.F) {
	for _, s := range []string{"a", "A-z_0", "a.b", "a b", "*", ">", "", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if cmkd.ValidateTenantID(s) != nil {
			return
		}
		if len(s) == 0 || len(s) > 64 || strings.ContainsAny(s, ". *>\t\r\n") {
			t.Fatalf("accepted %q", s)
		}
	})
}

func TestKindsHaveTenantDestroyed(t *testing.T) {
	for _, k := range cmkd.Kinds() {
		if k == cmkd.KindTenantDestroyed {
			return
		}
	}
	t.Fatal("Kinds() leaves out tenant.destroyed")
}

// A purged key, the customer's or the platform's, is the one seal reason
// that says the data is gone; the others leave room for an unseal.
func TestReasonNote(t *testing.T) {
	for _, r := range []string{cmkd.ReasonPurged, cmkd.PlatformReason(cmkd.ReasonPurged)} {
		if n := cmkd.ReasonNote(r); !strings.Contains(n, "can no longer be recovered") {
			t.Errorf("ReasonNote(%q) = %q, want it to say the data cannot be recovered", r, n)
		}
	}
	for _, r := range []string{cmkd.ReasonDisabled, cmkd.ReasonDeleted, cmkd.ReasonAccessDenied, cmkd.ReasonUnreachable,
		cmkd.ReasonExpired, cmkd.ReasonIntegrity, cmkd.PlatformReason(cmkd.ReasonDisabled), ""} {
		if n := cmkd.ReasonNote(r); n != "" {
			t.Errorf("ReasonNote(%q) = %q, want none", r, n)
		}
	}
}
