package eventgridtopic_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
)

// received is one request the webhook got.
type received struct {
	method string
	header http.Header
	body   []byte
}

// webhook is a real TLS endpoint that does Event Grid's validation
// handshake unless told not to, and answers notifications with answer(n)
// for the n-th notification (1-based), 200 when answer is nil.
type webhook struct {
	srv *httptest.Server

	mu            sync.Mutex
	echo          func(code string) string // what to answer the validation code with
	origin        string                   // WebHook-Allowed-Origin to answer OPTIONS with
	answer        func(n int, r *http.Request) int
	validations   []received
	notifications []received
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	wh := &webhook{echo: func(code string) string { return code }, origin: "eventgrid.azure.net"}
	wh.srv = httptest.NewUnstartedServer(http.HandlerFunc(wh.serve))
	wh.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused TLS handshakes are expected
	wh.srv.StartTLS()
	t.Cleanup(wh.srv.Close)
	return wh
}

func (wh *webhook) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rec := received{method: r.Method, header: r.Header.Clone(), body: body}
	switch {
	case r.Method == http.MethodOptions:
		wh.mu.Lock()
		wh.validations = append(wh.validations, rec)
		origin := wh.origin
		wh.mu.Unlock()
		if origin != "" {
			w.Header().Set("WebHook-Allowed-Origin", origin)
		}
		w.WriteHeader(http.StatusOK)
	case r.Header.Get("aeg-event-type") == "SubscriptionValidation":
		wh.mu.Lock()
		wh.validations = append(wh.validations, rec)
		echo := wh.echo
		wh.mu.Unlock()
		var evs []struct {
			EventType string
			Data      struct{ ValidationCode, ValidationURL string }
		}
		if err := json.Unmarshal(body, &evs); err != nil || len(evs) != 1 {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": echo(evs[0].Data.ValidationCode)})
	default:
		wh.mu.Lock()
		wh.notifications = append(wh.notifications, rec)
		n, answer := len(wh.notifications), wh.answer
		wh.mu.Unlock()
		status := http.StatusOK
		if answer != nil {
			status = answer(n, r)
		}
		w.WriteHeader(status)
	}
}

// Answer sets how notifications are answered.
func (wh *webhook) Answer(f func(n int, r *http.Request) int) {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	wh.answer = f
}

// Misbehave sets what the validation handshake is answered with.
func (wh *webhook) Misbehave(echo func(code string) string, origin string) {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	wh.echo, wh.origin = echo, origin
}

func (wh *webhook) Validations() []received {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return append([]received(nil), wh.validations...)
}

func (wh *webhook) Notifications() []received {
	wh.mu.Lock()
	defer wh.mu.Unlock()
	return append([]received(nil), wh.notifications...)
}

// rootCAs trusts the webhook's test certificate.
func (wh *webhook) rootCAs() *x509.CertPool {
	pool := x509.NewCertPool()
	pool.AddCert(wh.srv.Certificate())
	return pool
}

// sub is a subscription to wh with millisecond retries.
func (wh *webhook) sub(name string, schema eventgridtopic.Schema) eventgridtopic.SubscriptionConfig {
	return eventgridtopic.SubscriptionConfig{
		Name: name, Endpoint: wh.srv.URL + "/api/updates", Schema: schema, RootCAs: wh.rootCAs(),
		RetrySchedule: []time.Duration{time.Millisecond, 2 * time.Millisecond, 3 * time.Millisecond},
	}
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}
