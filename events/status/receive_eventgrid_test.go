package status_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events/status"
)

// ceDoc is ev as a status subscriber receives it.
func ceDoc(t *testing.T, ev cmkd.StatusEvent) string {
	t.Helper()
	ev.Source, ev.Time = "cmkd/test", time.Unix(1_800_000_000, 0).UTC()
	b, err := ev.MarshalCloudEvent()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func post(t *testing.T, h http.Handler, method, body string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, "/", strings.NewReader(body))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

// The receiver answers both Event Grid handshakes, passes on single and
// batched CloudEvents once per id however often they are delivered,
// rejects what does not parse with 400 (no retry) and asks for a retry
// with 503 when its consumer fails, passing the event on again then.
func TestEventGridReceiver(t *testing.T) {
	var got []string
	fail := false
	h := status.EventGridReceiver(func(ev cmkd.StatusEvent) error {
		if fail {
			return errors.New("stdout closed")
		}
		got = append(got, ev.ID)
		return nil
	})

	w := post(t, h, http.MethodOptions, "", map[string]string{"WebHook-Request-Origin": "eventgrid.azure.net"})
	if w.Code != 200 || w.Header().Get("WebHook-Allowed-Origin") != "eventgrid.azure.net" {
		t.Fatalf("CloudEvents handshake: %d %v", w.Code, w.Header())
	}
	if w := post(t, h, http.MethodOptions, "", nil); w.Code != 400 {
		t.Fatalf("OPTIONS without origin: %d, want 400", w.Code)
	}
	w = post(t, h, http.MethodPost, `[{"id":"1","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","subject":"",`+
		`"data":{"validationCode":"512d38b6"},"eventTime":"2026-11-30T00:00:00Z","dataVersion":"1"}]`, nil)
	if body, _ := io.ReadAll(w.Body); w.Code != 200 || !strings.Contains(string(body), `"validationResponse":"512d38b6"`) {
		t.Fatalf("Event Grid handshake: %d %s", w.Code, body)
	}

	one := ceDoc(t, event(1, "acme", cmkd.KindSealed))
	batch := "[" + one + "," + ceDoc(t, event(2, "acme", cmkd.KindUnsealed)) + "]"
	for _, body := range []string{one, batch, batch} {
		if w := post(t, h, http.MethodPost, body, nil); w.Code != 200 {
			t.Fatalf("delivery: %d %s", w.Code, w.Body)
		}
	}
	if strings.Join(got, ",") != "ev-0001,ev-0002" {
		t.Fatalf("passed on %v, want each id once in order", got)
	}

	for _, bad := range []string{"", "{", `[{"specversion":"1.0"}]`, `{"specversion":"0.3","id":"x","type":"io.cmkd.sealed","source":"s"}`} {
		if w := post(t, h, http.MethodPost, bad, nil); w.Code != 400 {
			t.Errorf("malformed delivery %q: %d, want 400", bad, w.Code)
		}
	}
	if w := post(t, h, http.MethodGet, "", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d", w.Code)
	}

	three := ceDoc(t, event(3, "acme", cmkd.KindSealed))
	fail = true
	if w := post(t, h, http.MethodPost, three, nil); w.Code != 503 {
		t.Fatalf("consumer failing: %d, want 503", w.Code)
	}
	fail = false
	if w := post(t, h, http.MethodPost, three, nil); w.Code != 200 || got[len(got)-1] != "ev-0003" {
		t.Fatalf("redelivery after a failure: %d, passed on %v", w.Code, got)
	}
}

// FuzzEventGridDelivery: whatever a delivery holds, the receiver answers
// without panicking, and only with the codes Event Grid acts on.
func FuzzEventGridDelivery(f *testing.F) {
	f.Add(`{"specversion":"1.0","id":"a","type":"io.cmkd.sealed","source":"cmkd/x","subject":"acme","data":{"tenant":"acme"}}`)
	f.Add(`[{"id":"1","eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","data":{"validationCode":"c"}}]`)
	f.Add(`[]`)
	f.Add(`[null,1,"x"]`)
	h := status.EventGridReceiver(func(cmkd.StatusEvent) error { return nil })
	f.Fuzz(func(t *testing.T, body string) {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/", strings.NewReader(body)))
		switch w.Code {
		case 200, 400, 413:
		default:
			t.Fatalf("answered %d", w.Code)
		}
	})
}
