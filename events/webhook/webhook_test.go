package webhook_test

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/webhook"
)

const secret = "s3cret-for-tests"

const keyEvent = `[{"id":"ev-1","topic":"/subscriptions/s/resourceGroups/rg/providers/Microsoft.KeyVault/vaults/kv",
"subject":"k","eventType":"Microsoft.KeyVault.KeyNewVersionCreated","eventTime":"2024-05-01T10:00:00Z",
"data":{"Id":"https://kv.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef","VaultName":"kv","ObjectType":"Key","ObjectName":"k","Version":"0123456789abcdef0123456789abcdef"},
"dataVersion":"1","metadataVersion":"1"}]`

// validationEvent is the handshake sample from Microsoft's "Webhook event
// delivery" documentation.
const validationEvent = `[{"id":"2d1781af-3a4c-4d7c-bd0c-e34b19da4e66","topic":"/subscriptions/xx/resourceGroups/rg/providers/Microsoft.EventGrid/topics/t",
"subject":"","data":{"validationCode":"512d38b6-c7b8-40c8-89fe-f46f9e9622b6","validationUrl":"https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/s/validate?id=512d38b6"},
"eventType":"Microsoft.EventGrid.SubscriptionValidationEvent","eventTime":"2018-01-25T22:12:19.4556811Z","metadataVersion":"1","dataVersion":"1"}]`

type calls struct {
	mu  sync.Mutex
	ids []string
}

func (c *calls) add(id string) { c.mu.Lock(); c.ids = append(c.ids, id); c.mu.Unlock() }
func (c *calls) n() int        { c.mu.Lock(); defer c.mu.Unlock(); return len(c.ids) }

// serve serves the endpoint of cfg, handing events to h.
func serve(t *testing.T, cfg webhook.Config, h events.Handler) string {
	t.Helper()
	if cfg.Decoder == nil {
		cfg.Decoder = events.NewDecoder(events.DecoderConfig{})
	}
	cfg.Logger = slog.New(slog.DiscardHandler)
	src, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(src.Handler(h))
	t.Cleanup(srv.Close)
	return srv.URL + cfg.Path
}

func post(t *testing.T, url, body string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var withSecret = map[string]string{webhook.DefaultSecretHeader: secret}

func TestHandshakes(t *testing.T) {
	var c calls
	url := serve(t, webhook.Config{Path: "/events", Auth: webhook.Auth{SharedSecret: secret}},
		func(_ context.Context, ev events.Event) error { c.add(ev.ID); return nil })

	resp, body := post(t, url, validationEvent, withSecret)
	var got struct{ ValidationResponse string }
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil || got.ValidationResponse != "512d38b6-c7b8-40c8-89fe-f46f9e9622b6" {
		t.Errorf("validation handshake: %d %s", resp.StatusCode, body)
	}

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodOptions, url, nil)
	req.Header.Set("WebHook-Request-Origin", "eventgrid.azure.net")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("WebHook-Allowed-Origin") != "eventgrid.azure.net" || resp.Header.Get("WebHook-Allowed-Rate") != "*" {
		t.Errorf("abuse protection: %d %v", resp.StatusCode, resp.Header)
	}
	if c.n() != 0 {
		t.Errorf("handshakes reached the handler %d times", c.n())
	}
}

func TestDeliveryOutcomes(t *testing.T) {
	var c calls
	var mode string
	var mu sync.Mutex
	setMode := func(m string) { mu.Lock(); mode = m; mu.Unlock() }
	url := serve(t, webhook.Config{Path: "/events", MaxBody: 4096, Auth: webhook.Auth{SharedSecret: secret}},
		func(_ context.Context, ev events.Event) error {
			c.add(ev.ID)
			mu.Lock()
			defer mu.Unlock()
			switch mode {
			case "transient":
				return events.Transient(errors.New("vault unreachable"), 1500*time.Millisecond)
			case "permanent":
				return events.Permanent(errors.New("forbidden"))
			}
			return nil
		})

	tests := []struct {
		name, mode, body, url string
		hdr                   map[string]string
		status, handled       int
	}{
		{"no credentials", "", keyEvent, url, nil, 401, 0},
		{"wrong secret", "", keyEvent, url, map[string]string{webhook.DefaultSecretHeader: "guess"}, 401, 0},
		{"oversized", "", "[" + strings.Repeat(" ", 5000) + "]", url, withSecret, 413, 0},
		{"malformed", "", `{"eventType":"Microsoft.KeyVault.KeyExpired"}`, url, withSecret, 400, 0},
		{"success via header", "", keyEvent, url, withSecret, 200, 1},
		{"success via query", "", keyEvent, url + "?code=" + secret, nil, 200, 1},
		{"handler error retries", "transient", keyEvent, url, withSecret, 503, 1},
		{"permanent error rejects", "permanent", keyEvent, url, withSecret, 400, 1},
		{"ignored events", "", strings.Replace(keyEvent, "KeyNewVersionCreated", "SecretNewVersionCreated", 1), url, withSecret, 200, 0},
		{"wrong path", "", keyEvent, strings.TrimSuffix(url, "/events") + "/other", withSecret, 404, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setMode(tt.mode)
			before := c.n()
			resp, body := post(t, tt.url, tt.body, tt.hdr)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, strings.TrimSpace(body), tt.status)
			}
			if got := c.n() - before; got != tt.handled {
				t.Errorf("handler ran %d times, want %d", got, tt.handled)
			}
			if tt.mode == "transient" && resp.Header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After = %q, want 2", resp.Header.Get("Retry-After"))
			}
		})
	}
}

func TestOversizedWithoutContentLength(t *testing.T) {
	url := serve(t, webhook.Config{MaxBody: 1024, Auth: webhook.Auth{SharedSecret: secret}},
		func(context.Context, events.Event) error { return nil })
	pr, pw := io.Pipe()
	go func() { _, _ = pw.Write([]byte(strings.Repeat("x", 4096))); pw.Close() }()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, url, pr)
	req.Header.Set(webhook.DefaultSecretHeader, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked oversized body: status %d, want 413", resp.StatusCode)
	}
}

func TestQueueModeEnqueuesBodyUnchanged(t *testing.T) {
	var mu sync.Mutex
	var queued []string
	fail := false
	url := serve(t, webhook.Config{Auth: webhook.Auth{SharedSecret: secret},
		Enqueue: func(_ context.Context, body []byte) error {
			mu.Lock()
			defer mu.Unlock()
			if fail {
				return errors.New("nats down")
			}
			queued = append(queued, string(body))
			return nil
		}}, nil)
	if resp, _ := post(t, url, keyEvent, withSecret); resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	mu.Lock()
	if len(queued) != 1 || queued[0] != keyEvent {
		t.Errorf("queued %q", queued)
	}
	fail = true
	mu.Unlock()
	if resp, _ := post(t, url, keyEvent, withSecret); resp.StatusCode != 503 {
		t.Errorf("enqueue failure: status %d, want 503", resp.StatusCode)
	}
}

func TestConfigValidate(t *testing.T) {
	dec := events.NewDecoder(events.DecoderConfig{})
	for _, tc := range []struct {
		cfg  webhook.Config
		want string
	}{
		{webhook.Config{Auth: webhook.Auth{SharedSecret: "x"}}, "Decoder"},
		{webhook.Config{Decoder: dec}, "Auth"},
		{webhook.Config{Decoder: dec, Auth: webhook.Auth{Entra: &webhook.EntraAuth{Issuer: "i", JWKSURL: "https://x"}}}, "Audience"},
		{webhook.Config{Decoder: dec, Auth: webhook.Auth{Entra: &webhook.EntraAuth{Audience: "a", Issuer: "i", JWKSURL: "http://x"}}}, "JWKSURL"},
		{webhook.Config{Decoder: dec, MaxBody: 2 << 20, Auth: webhook.Auth{SharedSecret: "x"}}, "MaxBody"},
		{webhook.Config{Decoder: dec, Auth: webhook.Auth{Entra: &webhook.EntraAuth{Audience: "a", Issuer: "i", JWKSURL: "https://x",
			AllowedApplications: []string{webhook.EventGridApplicationID, " "}}}}, "AllowedApplications[1]"},
		{webhook.Config{Decoder: dec, IdleTimeout: -1, Auth: webhook.Auth{SharedSecret: "x"}}, "IdleTimeout"},
		{webhook.Config{Decoder: dec, MaxConns: -1, Auth: webhook.Auth{SharedSecret: "x"}}, "MaxConns"},
	} {
		if _, err := webhook.New(tc.cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("err = %v, want it to name %s", err, tc.want)
		}
	}
}

// TestEntraBearerToken signs tokens with a test RSA key whose public half a
// JWKS endpoint serves over HTTPS.
func TestEntraBearerToken(t *testing.T) {
	key, other := signingKey(t, "k1"), signingKey(t, "other")
	jwks := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "kid": "k1",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	t.Cleanup(jwks.Close)
	const aud, iss = "api://cmkd-webhook", "https://login.microsoftonline.com/tenant-id/v2.0"
	var c calls
	url := serve(t, webhook.Config{
		Auth: webhook.Auth{Entra: &webhook.EntraAuth{Audience: aud, Issuer: iss, JWKSURL: jwks.URL, HTTPClient: jwks.Client()}},
	}, func(_ context.Context, ev events.Event) error { c.add(ev.ID); return nil })
	now := time.Now()
	sign := func(k *rsa.PrivateKey, kid string, claims jwt.MapClaims) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(k)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	good := jwt.MapClaims{"aud": aud, "iss": iss, "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix()}
	with := func(k string, v any) jwt.MapClaims {
		m := jwt.MapClaims{}
		for kk, vv := range good {
			m[kk] = vv
		}
		m[k] = v
		return m
	}
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, good)
	hs.Header["kid"] = "k1"
	hsToken, _ := hs.SignedString([]byte("k1"))
	tests := []struct {
		name, token string
		status      int
	}{
		{"valid", sign(key, "k1", good), 200},
		{"within skew", sign(key, "k1", with("exp", now.Add(-time.Minute).Unix())), 200},
		{"wrong audience", sign(key, "k1", with("aud", "api://other")), 401},
		{"wrong issuer", sign(key, "k1", with("iss", "https://evil.example/")), 401},
		{"expired", sign(key, "k1", with("exp", now.Add(-time.Hour).Unix())), 401},
		{"no exp", sign(key, "k1", jwt.MapClaims{"aud": aud, "iss": iss}), 401},
		{"not yet valid", sign(key, "k1", with("nbf", now.Add(time.Hour).Unix())), 401},
		{"signed by another key", sign(other, "k1", good), 401},
		{"unknown kid", sign(other, "k2", good), 401},
		{"HS256 with a guessable secret", hsToken, 401},
		{"garbage", "not.a.jwt", 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := c.n()
			resp, body := post(t, url, keyEvent, map[string]string{"Authorization": "Bearer " + tt.token})
			if resp.StatusCode != tt.status {
				t.Errorf("status %d (%s), want %d", resp.StatusCode, strings.TrimSpace(body), tt.status)
			}
			if want := map[bool]int{true: 1, false: 0}[tt.status == 200]; c.n()-before != want {
				t.Errorf("handler ran %d times, want %d", c.n()-before, want)
			}
		})
	}
}
