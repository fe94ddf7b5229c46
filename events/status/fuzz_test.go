package status_test

import (
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/store"
)

func FuzzDecode(f *testing.F) {
	good, _ := status.Encode("dev", store.StatusEvent{ID: "1", Kind: "sealed", Tenant: "acme", Time: time.Unix(0, 0),
		Data: map[string]any{"reason": "disabled"}})
	f.Add(good)
	f.Add([]byte(`{"specversion":"1.0","id":"x","type":"io.cmkd.unsealed","subject":"t","data":null}`))
	f.Add([]byte(`{"specversion":"0.3"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := status.Decode(b)
		if err != nil {
			return
		}
		if ev.ID == "" || ev.Subject == "" || ev.Kind() == "" && ev.Type != status.TypePrefix {
			t.Fatalf("decoded an event without id, subject or type: %+v", ev)
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
	if ev.Kind() != store.KindRewrapCompleted || !ev.Time.Equal(at) || ev.Data["deks_total"] != float64(3) || ev.Source != "cmkd/dev" {
		t.Fatalf("round trip: %+v", ev)
	}
	for _, bad := range []string{`{`, `{"specversion":"1.0","id":"","type":"io.cmkd.x","subject":"t"}`, `{"specversion":"1.0","id":"a","type":"other","subject":"t"}`} {
		if _, err := status.Decode([]byte(bad)); err == nil {
			t.Errorf("Decode(%s) accepted", bad)
		}
	}
}
