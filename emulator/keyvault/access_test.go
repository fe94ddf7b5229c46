package keyvault

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd/internal/eventually"
)

// The first request of azkeys carries no token and no body; the 401 must
// come before anything reads the body.
func TestChallengeRaw(t *testing.T) {
	srv := start(t, Config{TenantID: "11111111-2222-3333-4444-555555555555"})
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/keys/x/create?api-version=2025-07-01", nil)
	resp, err := httpClient(srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	wantHdr := `Bearer authorization="https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555", resource="https://vault.azure.net"`
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != wantHdr {
		t.Fatalf("challenge %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	if string(body) != `{"error":{"code":"Unauthorized","message":"AKV10000: Request is missing a Bearer or PoP token."}}` ||
		resp.Header.Get("Content-Length") != "97" || resp.Header.Get("Content-Type") != "application/json; charset=utf-8" ||
		resp.Header.Get("x-ms-request-id") == "" || resp.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("challenge body %s headers %v", body, resp.Header)
	}
	if srv.Calls()["challenge"] != 1 || srv.Calls()["createKey"] != 0 {
		t.Fatalf("calls %v", srv.Calls())
	}
}

func TestBadAPIVersion(t *testing.T) {
	srv := start(t, Config{})
	for _, q := range []string{"?api-version=7.3", "?api-version=2099-01-01", ""} {
		var e map[string]map[string]any
		if status := rawJSON(t, srv, http.MethodGet, srv.URL()+"/keys"+q, "", &e); status != 400 || e["error"]["code"] != "BadParameter" {
			t.Fatalf("%q: %d %v", q, status, e)
		}
	}
	for _, v := range []string{"7.4", "7.5", "7.6", "2025-07-01"} {
		if status := rawJSON(t, srv, http.MethodGet, srv.URL()+"/keys?api-version="+v, "", nil); status != 200 {
			t.Fatalf("%s: %d", v, status)
		}
	}
	// 7.4 has no hsmPlatform.
	c := newClient(t, srv)
	createKey(t, c, "v74", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)})
	var kb map[string]map[string]any
	rawJSON(t, srv, http.MethodGet, srv.URL()+"/keys/v74?api-version=7.4", "", &kb)
	if _, ok := kb["attributes"]["hsmPlatform"]; ok || kb["attributes"]["recoverableDays"] != float64(7) {
		t.Fatalf("7.4 attributes %v", kb["attributes"])
	}
}

func TestTokenIsEnforced(t *testing.T) {
	srv := start(t, Config{Token: "right"})
	good, err := azkeys.NewClient(srv.URL(), staticToken("right"), clientOptions(srv))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := good.CreateKey(t.Context(), "k", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatalf("right token: %v", err)
	}
	_, err = newClient(t, srv).GetKey(t.Context(), "k", "", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusUnauthorized {
		t.Fatalf("wrong token: %v", err)
	}
}

func TestRevokeAndGrant(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	createKey(t, c, "k", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM)})
	srv.Revoke()
	_, err := c.GetKey(t.Context(), "k", "", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "ForbiddenByRbac")
	_, err = c.UnwrapKey(t.Context(), "k", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256KW), Value: make([]byte, 24)}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "ForbiddenByRbac")
	_, err = c.NewListKeyPropertiesPager(nil).NextPage(t.Context())
	wantErr(t, err, http.StatusForbidden, "Forbidden", "ForbiddenByRbac")
	srv.Grant()
	if _, err := c.GetKey(t.Context(), "k", "", nil); err != nil {
		t.Fatalf("after grant: %v", err)
	}
	// The same over the control API.
	if status := rawJSON(t, srv, http.MethodPost, srv.URL()+"/_emulator/access", `{"revoked":true}`, nil); status != 204 {
		t.Fatalf("control access: %d", status)
	}
	_, err = c.GetKey(t.Context(), "k", "", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "ForbiddenByRbac")
	rawJSON(t, srv, http.MethodPost, srv.URL()+"/_emulator/access", `{"revoked":false}`, nil)
	if _, err := c.GetKey(t.Context(), "k", "", nil); err != nil {
		t.Fatalf("after control grant: %v", err)
	}
}

func TestThrottle(t *testing.T) {
	srv := start(t, Config{ThrottleLimit: 5, ThrottleWindow: time.Minute, RetryAfter: true})
	c := newClient(t, srv)
	for i := range 5 {
		if _, err := c.NewListKeyPropertiesPager(nil).NextPage(t.Context()); err != nil {
			t.Fatalf("request %d within the limit: %v", i, err)
		}
	}
	_, err := c.NewListKeyPropertiesPager(nil).NextPage(t.Context())
	wantErr(t, err, http.StatusTooManyRequests, "Throttled", "")
	var re *azcore.ResponseError
	errors.As(err, &re)
	if ra := re.RawResponse.Header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Fatalf("Retry-After %q", ra)
	}
	if got := srv.Calls(); got["throttled"] != 1 || got["listKeys"] != 5 {
		t.Fatalf("calls %v", got)
	}
	// The control API is never throttled, and can lift the limit.
	var calls map[string]int64
	if rawJSON(t, srv, http.MethodGet, srv.URL()+"/_emulator/calls", "", &calls) != 200 || calls["throttled"] != 1 {
		t.Fatalf("control calls %v", calls)
	}
	rawJSON(t, srv, http.MethodPost, srv.URL()+"/_emulator/throttle", `{"limit":-1}`, nil)
	if _, err := c.NewListKeyPropertiesPager(nil).NextPage(t.Context()); err != nil {
		t.Fatalf("after lifting: %v", err)
	}
	// Without RetryAfter no header is sent, like the real service often.
	srv.SetThrottle(1, time.Minute, false)
	c.NewListKeyPropertiesPager(nil).NextPage(t.Context())
	_, err = c.NewListKeyPropertiesPager(nil).NextPage(t.Context())
	wantErr(t, err, http.StatusTooManyRequests, "Throttled", "")
	errors.As(err, &re)
	if re.RawResponse.Header.Get("Retry-After") != "" {
		t.Fatal("unexpected Retry-After")
	}
	// A short window refills by itself.
	srv.SetThrottle(1, 50*time.Millisecond, false)
	eventually.True(t, 5*time.Second, "throttle window to refill", func() bool {
		_, err := c.NewListKeyPropertiesPager(nil).NextPage(t.Context())
		return err == nil
	})
}

func TestFaults(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	srv.SetFaults(Faults{ErrorRate: 1})
	for range 4 {
		_, err := c.NewListKeyPropertiesPager(nil).NextPage(t.Context())
		var re *azcore.ResponseError
		if !errors.As(err, &re) || (re.ErrorCode != "InternalServerError" || re.StatusCode != 500) && (re.ErrorCode != "ServiceUnavailable" || re.StatusCode != 503) {
			t.Fatalf("want 500/503, got %v", err)
		}
	}
	if srv.Calls()["listKeys"] != 0 {
		t.Fatal("faulted requests must not count as reaching the operation")
	}
	srv.SetFaults(Faults{DropRate: 1})
	_, err := c.NewListKeyPropertiesPager(nil).NextPage(t.Context())
	var re *azcore.ResponseError
	if err == nil || errors.As(err, &re) {
		t.Fatalf("want a connection error, got %v", err)
	}
	// Latency, set over the control API, delays the answer.
	rawJSON(t, srv, http.MethodPost, srv.URL()+"/_emulator/faults", `{"latency_ms":200}`, nil)
	begin := time.Now()
	if _, err := c.NewListKeyPropertiesPager(nil).NextPage(t.Context()); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(begin); d < 200*time.Millisecond {
		t.Fatalf("latency not applied: %v", d)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.NewListKeyPropertiesPager(nil).NextPage(ctx); err == nil {
		t.Fatal("want a timeout under latency")
	}
	var e map[string]map[string]any
	if rawJSON(t, srv, http.MethodPost, srv.URL()+"/_emulator/faults", `{"error_rate":2}`, &e); e["error"]["code"] != "BadParameter" {
		t.Fatalf("bad faults: %v", e)
	}
	// Faults limited to GET (reading a key, as a probe does), set over the
	// control API: a POST goes through (for "k", which does not exist, to
	// the operation's own 404), a read of the key fails.
	rawJSON(t, srv, http.MethodPost, srv.URL()+"/_emulator/faults", `{"error_rate":1,"methods":["GET"]}`, nil)
	if _, err := c.RotateKey(t.Context(), "k", nil); !errors.As(err, &re) || re.StatusCode != http.StatusNotFound {
		t.Fatalf("POST under GET-only faults: %v, want the operation's own 404", err)
	}
	if _, err := c.GetKey(t.Context(), "k", "", nil); !errors.As(err, &re) || re.StatusCode < 500 {
		t.Fatalf("GET under GET-only faults: %v, want 500 or 503", err)
	}
	rawJSON(t, srv, http.MethodPost, srv.URL()+"/_emulator/faults", `{}`, nil)
	rawJSON(t, srv, http.MethodPost, srv.URL()+"/_emulator/calls/reset", "", nil)
	if len(srv.Calls()) != 0 {
		t.Fatalf("reset: %v", srv.Calls())
	}
}

func TestBodyLimit(t *testing.T) {
	srv := start(t, Config{})
	big := `{"kty":"EC","tags":{"x":"` + strings.Repeat("a", DefaultMaxBody) + `"}}`
	var e map[string]map[string]any
	if status := rawJSON(t, srv, http.MethodPost, srv.URL()+"/keys/big/create?api-version=7.5", big, &e); status != 413 {
		t.Fatalf("status %d %v", status, e)
	}
}

func clientOptions(srv *Server) *azkeys.ClientOptions {
	return &azkeys.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: httpClient(srv)}, DisableChallengeResourceVerification: true}
}
