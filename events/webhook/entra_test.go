package webhook_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/webhook"
	"github.com/cmkd-io/cmkd/internal/eventually"
)

const (
	entraAudience = "api://cmkd-webhook"
	entraIssuer   = "https://login.microsoftonline.com/tenant-id/v2.0"
)

// entra plays Microsoft Entra: it signs tokens and serves the public keys
// of the kids it currently publishes over HTTPS.
type entra struct {
	t    *testing.T
	srv  *httptest.Server
	keys map[string]*rsa.PrivateKey

	mu        sync.Mutex
	published []string
	status    int
	// hold, while set, makes fetches wait until it is closed or the
	// fetching request goes away; held receives each held fetch.
	hold    chan struct{}
	held    chan struct{}
	fetches atomic.Int64
}

// signingKeys are generated once per kid for the package's tests: RSA
// key generation is slow under the race detector.
var signingKeys sync.Map

func signingKey(t *testing.T, kid string) *rsa.PrivateKey {
	t.Helper()
	if k, ok := signingKeys.Load(kid); ok {
		return k.(*rsa.PrivateKey)
	}
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := signingKeys.LoadOrStore(kid, k)
	return got.(*rsa.PrivateKey)
}

func newEntra(t *testing.T, kids ...string) *entra {
	t.Helper()
	e := &entra{t: t, keys: map[string]*rsa.PrivateKey{}, published: kids, status: http.StatusOK, held: make(chan struct{}, 16)}
	for _, kid := range append([]string{"rogue"}, kids...) {
		e.keys[kid] = signingKey(t, kid)
	}
	e.srv = httptest.NewTLSServer(http.HandlerFunc(e.serveJWKS))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *entra) serveJWKS(w http.ResponseWriter, r *http.Request) {
	e.fetches.Add(1)
	e.mu.Lock()
	hold, published, status := e.hold, e.published, e.status
	e.mu.Unlock()
	if hold != nil {
		e.held <- struct{}{}
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	if status != http.StatusOK {
		http.Error(w, "unavailable", status)
		return
	}
	var set []map[string]string
	for _, kid := range published {
		k := e.keys[kid]
		set = append(set, map[string]string{
			"kty": "RSA", "use": "sig", "kid": kid,
			"n": base64.RawURLEncoding.EncodeToString(k.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(k.E)).Bytes()),
		})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": set})
}

func (e *entra) publish(kids ...string) { e.mu.Lock(); e.published = kids; e.mu.Unlock() }
func (e *entra) answer(status int)      { e.mu.Lock(); e.status = status; e.mu.Unlock() }

// holdFetches makes fetches wait until the returned func is called.
func (e *entra) holdFetches() (release func()) {
	ch := make(chan struct{})
	e.mu.Lock()
	e.hold = ch
	e.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			e.mu.Lock()
			e.hold = nil
			e.mu.Unlock()
			close(ch)
		})
	}
	e.t.Cleanup(release)
	return release
}

// token signs a token with the key of kid ("rogue" is never published),
// with valid claims changed by extra.
func (e *entra) token(kid string, extra jwt.MapClaims) string {
	e.t.Helper()
	now := time.Now()
	claims := jwt.MapClaims{"aud": entraAudience, "iss": entraIssuer, "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix()}
	for k, v := range extra {
		claims[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(e.keys[kid])
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// auth is the Entra configuration trusting e.
func (e *entra) auth(tune func(*webhook.EntraAuth)) webhook.Auth {
	a := &webhook.EntraAuth{Audience: entraAudience, Issuer: entraIssuer, JWKSURL: e.srv.URL, HTTPClient: e.srv.Client()}
	if tune != nil {
		tune(a)
	}
	return webhook.Auth{Entra: a}
}

func bearer(tok string) map[string]string { return map[string]string{"Authorization": "Bearer " + tok} }

// counter reads one series of cmkd_webhook_requests_total.
func counter(t *testing.T, reg *prometheus.Registry, outcome string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cmkd_webhook_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// accept handles every event.
func accept(context.Context, events.Event) error { return nil }

// TestEntraHangUpDoesNotLockOutValidTokens is the attack: an
// unauthenticated request whose unknown kid makes the webhook fetch the
// signing keys hangs up while the fetch runs. The fetch must go on for the
// requests after it, and valid tokens must keep working.
func TestEntraHangUpDoesNotLockOutValidTokens(t *testing.T) {
	idp := newEntra(t, "k1")
	reg := prometheus.NewRegistry()
	url := serve(t, webhook.Config{Auth: idp.auth(nil), Registerer: reg}, accept)
	release := idp.holdFetches()

	// The attacker: no body, so the server notices the hang-up at once.
	ctx, hangUp := context.WithCancel(t.Context())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
	req.Header.Set("Authorization", "Bearer "+idp.token("rogue", nil))
	attacked := make(chan struct{})
	go func() {
		defer close(attacked)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	select {
	case <-idp.held:
	case <-time.After(10 * time.Second):
		t.Fatal("the unknown kid did not fetch the signing keys")
	}
	hangUp()
	<-attacked
	eventually.True(t, 10*time.Second, "the webhook to finish the attacker's request", func() bool {
		return counter(t, reg, "unauthorized") == 1
	})
	release()

	if resp, body := post(t, url, keyEvent, bearer(idp.token("k1", nil))); resp.StatusCode != http.StatusOK {
		t.Fatalf("valid token after the hang-up: %d %s", resp.StatusCode, strings.TrimSpace(body))
	}
	// Unknown kids do not make the webhook hammer the key endpoint.
	for range 20 {
		if resp, _ := post(t, url, keyEvent, bearer(idp.token("rogue", nil))); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("unknown kid: status %d, want 401", resp.StatusCode)
		}
	}
	if n := idp.fetches.Load(); n != 1 {
		t.Errorf("signing keys fetched %d times, want 1", n)
	}
}

func TestEntraConcurrentRequestsShareOneFetch(t *testing.T) {
	idp := newEntra(t, "k1")
	url := serve(t, webhook.Config{Auth: idp.auth(nil)}, accept)
	release := idp.holdFetches()
	const n = 10
	codes := make(chan int, n)
	for range n {
		go func() {
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(keyEvent))
			req.Header.Set("Authorization", "Bearer "+idp.token("k1", nil))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codes <- 0
				return
			}
			resp.Body.Close()
			codes <- resp.StatusCode
		}()
	}
	<-idp.held
	release()
	for range n {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("status %d, want 200", code)
		}
	}
	if got := idp.fetches.Load(); got != 1 {
		t.Errorf("%d concurrent requests fetched the signing keys %d times, want 1", n, got)
	}
}

func TestEntraAllowedApplications(t *testing.T) {
	idp := newEntra(t, "k1")
	url := serve(t, webhook.Config{Auth: idp.auth(func(a *webhook.EntraAuth) {
		a.AllowedApplications = []string{webhook.EventGridApplicationID}
	})}, accept)
	const other = "0f3e2a1b-1111-4222-8333-944455566677"
	for _, tc := range []struct {
		name   string
		claims jwt.MapClaims
		status int
	}{
		{"v1 token of Event Grid", jwt.MapClaims{"ver": "1.0", "appid": webhook.EventGridApplicationID}, 200},
		{"v2 token of Event Grid", jwt.MapClaims{"ver": "2.0", "azp": webhook.EventGridApplicationID}, 200},
		{"application id in upper case", jwt.MapClaims{"appid": strings.ToUpper(webhook.EventGridApplicationID)}, 200},
		{"v1 token of another application", jwt.MapClaims{"ver": "1.0", "appid": other}, 401},
		{"v2 token of another application", jwt.MapClaims{"ver": "2.0", "azp": other}, 401},
		{"no application claim", nil, 401},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := post(t, url, keyEvent, bearer(idp.token("k1", tc.claims)))
			if resp.StatusCode != tc.status {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, strings.TrimSpace(body), tc.status)
			}
		})
	}
}

func TestEntraWithdrawnKeyStopsValidating(t *testing.T) {
	idp := newEntra(t, "k1", "k2")
	url := serve(t, webhook.Config{Auth: idp.auth(func(a *webhook.EntraAuth) {
		a.RefreshInterval = 200 * time.Millisecond
	})}, accept)
	if resp, body := post(t, url, keyEvent, bearer(idp.token("k1", nil))); resp.StatusCode != http.StatusOK {
		t.Fatalf("k1 while published: %d %s", resp.StatusCode, body)
	}
	idp.publish("k2")
	eventually.True(t, 10*time.Second, "a token signed by the withdrawn key to be refused", func() bool {
		resp, _ := post(t, url, keyEvent, bearer(idp.token("k1", nil)))
		return resp.StatusCode == http.StatusUnauthorized
	})
	if resp, body := post(t, url, keyEvent, bearer(idp.token("k2", nil))); resp.StatusCode != http.StatusOK {
		t.Fatalf("k2, still published: %d %s", resp.StatusCode, body)
	}
}

// TestEntraKeysUnavailableAsksForRetry: Event Grid never retries a 401, so
// a delivery we could not check, because the key endpoint failed, must be
// answered 503 or it is lost.
func TestEntraKeysUnavailableAsksForRetry(t *testing.T) {
	idp := newEntra(t, "k1")
	idp.answer(http.StatusInternalServerError)
	url := serve(t, webhook.Config{Auth: idp.auth(nil)}, accept)
	resp, body := post(t, url, keyEvent, bearer(idp.token("k1", nil)))
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("signing keys unavailable: %d %s, want 503", resp.StatusCode, strings.TrimSpace(body))
	}
	if resp, _ := post(t, url, keyEvent, map[string]string{"Authorization": "Bearer not.a.jwt"}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("garbage token while keys are unavailable: %d, want 401", resp.StatusCode)
	}
}
