package status_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/store"
)

func FuzzDecode(f *testing.F) {
	good, err := status.Encode("dev", store.StatusEvent{ID: "1", Kind: "sealed", Tenant: "acme", Time: time.Unix(0, 0),
		Data: map[string]any{"reason": "disabled"}})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"io.cmkd.unsealed","subject":"t","data":null}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"io.cmkd.a.>","subject":"t"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"io.cmkd.sealed","subject":"a.b"}`))
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"io.cmkd.sealed","subject":"t","time":"yesterday"}`))
	f.Add([]byte(`{"specversion":"0.3"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := status.Decode(b)
		if err != nil {
			if !errors.Is(err, status.ErrInvalidEvent) {
				t.Fatalf("Decode error %v does not wrap ErrInvalidEvent", err)
			}
			return
		}
		// What a reader relies on: an id, and a tenant and kind it can put
		// back into a subject.
		if ev.ID == "" || store.ValidateTenantID(ev.Tenant()) != nil || ev.Kind() == "" || strings.ContainsAny(ev.Kind(), "*> \t") {
			t.Fatalf("decoded an event without id, tenant or kind: %+v", ev)
		}
		// A decoded event re-encodes to a document that decodes the same.
		again, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		ev2, err := status.Decode(again)
		if err != nil || ev2.ID != ev.ID || ev2.Type != ev.Type || ev2.Subject != ev.Subject || !ev2.Time.Equal(ev.Time) {
			t.Fatalf("re-encoded %s decodes to %+v, %v", again, ev2, err)
		}
	})
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	body, err := status.Encode("dev", store.StatusEvent{ID: "e1", Kind: store.KindRewrapCompleted, Tenant: "acme", Time: at,
		Data: map[string]any{"deks_total": 3}})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := status.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Kind() != store.KindRewrapCompleted || ev.Tenant() != "acme" || !ev.Time.Equal(at) || ev.Data["deks_total"] != float64(3) || ev.Source != "cmkd/dev" {
		t.Fatalf("round trip: %+v", ev)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, bad := range []string{
		`{`,
		`{"specversion":"1.0","id":"","type":"io.cmkd.x","subject":"t"}`,
		`{"specversion":"1.0","id":"a","type":"other","subject":"t"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.","subject":"t"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":""}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":"a.b"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed.*","subject":"t"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":"t","data":"text"}`,
		`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","subject":"t","pad":"` + strings.Repeat("x", status.MaxEventBytes) + `"}`,
	} {
		if _, err := status.Decode([]byte(bad)); !errors.Is(err, status.ErrInvalidEvent) {
			t.Errorf("Decode(%.80s) = %v, want ErrInvalidEvent", bad, err)
		}
	}
}

func TestEncodeRefusesWhatWouldChangeTheSubject(t *testing.T) {
	for _, ev := range []store.StatusEvent{
		{ID: "1", Kind: "sealed", Tenant: "a.b"},
		{ID: "1", Kind: "sealed", Tenant: "*"},
		{ID: "1", Kind: "sealed.>", Tenant: "acme"},
		{ID: "1", Kind: "", Tenant: "acme"},
		{ID: "", Kind: "sealed", Tenant: "acme"},
	} {
		if _, err := status.Encode("dev", ev); !errors.Is(err, status.ErrInvalidEvent) {
			t.Errorf("Encode(%+v) = %v, want ErrInvalidEvent", ev, err)
		}
	}
}
