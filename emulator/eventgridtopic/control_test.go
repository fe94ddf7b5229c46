package eventgridtopic_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
	"github.com/cmkd-io/cmkd/internal/eventually"
)

// Another process subscribes a webhook through the control API, with the
// topic's key: the handshake runs first, events then flow, and after
// Unsubscribe they stop. A wrong key, a second delete and a webhook that
// fails the handshake are refused with the service's error shape.
func TestRemoteSubscription(t *testing.T) {
	s := start(t, eventgridtopic.Config{Name: "status"})
	var delivered atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			w.Header().Set("WebHook-Allowed-Origin", r.Header.Get("WebHook-Request-Origin"))
			return
		}
		delivered.Add(1)
	}))
	defer hook.Close()
	remote := eventgridtopic.Remote{URL: s.URL(), Key: testKey, HTTP: httpClient(s)}
	sub := eventgridtopic.RemoteSubscription{Name: "tail-1", Endpoint: hook.URL, Schema: eventgridtopic.SchemaCloudEvents}

	bad := remote
	bad.Key = "wrong"
	if err := bad.Subscribe(t.Context(), sub); err == nil || !strings.Contains(err.Error(), "Unauthorized") {
		t.Fatalf("subscribe with a wrong key: %v, want Unauthorized", err)
	}
	if err := remote.Subscribe(t.Context(), sub); err != nil {
		t.Fatal(err)
	}
	publishCloudEvents(t, s, 2)
	eventually.True(t, 10*time.Second, "two deliveries", func() bool { return delivered.Load() == 2 })

	if err := remote.Unsubscribe(t.Context(), "tail-1"); err != nil {
		t.Fatal(err)
	}
	publishCloudEvents(t, s, 1)
	time.Sleep(200 * time.Millisecond) // a delivery would take a millisecond
	if n := delivered.Load(); n != 2 {
		t.Fatalf("%d deliveries after unsubscribing, want still 2", n)
	}
	if err := remote.Unsubscribe(t.Context(), "tail-1"); err == nil || !strings.Contains(err.Error(), "NotFound") {
		t.Fatalf("second unsubscribe: %v, want NotFound", err)
	}

	silent := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer silent.Close()
	err := remote.Subscribe(t.Context(), eventgridtopic.RemoteSubscription{Name: "tail-2", Endpoint: silent.URL,
		Schema: eventgridtopic.SchemaCloudEvents})
	if err == nil || !strings.Contains(err.Error(), "BadRequest") {
		t.Fatalf("subscribe a webhook that fails the handshake: %v, want BadRequest", err)
	}
}
