package main

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmkd-io/cmkd/api"
	"github.com/cmkd-io/cmkd/internal/eventually"
)

// call posts body (JSON) to the data API and decodes the answer into out;
// it returns the status and the raw answer.
func call(t *testing.T, method, url, token string, body any, out any) (int, string) {
	t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		must(t, err)
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	must(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	must(t, err)
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		must(t, json.Unmarshal(raw, out))
	}
	return resp.StatusCode, string(raw)
}

type ciphertext struct {
	Ciphertext string `json:"ciphertext"`
}

type plaintext struct {
	Plaintext string `json:"plaintext"`
}

// The data API of `cmkd dev`, with a real HTTP client: encrypt, rotate the
// key, decrypt; disable → 423 with the reason, enable → 200; a body over
// the limit → 413; tampered ciphertext → 400; tenant destroy → every
// earlier ciphertext fails for good.
func TestE2EDataAPI(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	base := "http://" + d.cfg.API.Listen + "/v1/tenants/"
	d.must("", "vault", "create-key", "cmk")
	d.must("", "tenant", "add", "acme", "--key", d.keyURL("cmk"))
	msg := base64.StdEncoding.EncodeToString([]byte("card 4111"))
	aad := base64.StdEncoding.EncodeToString([]byte("row 7"))
	var ct ciphertext
	if code, raw := call(t, "POST", base+"acme/encrypt", "", map[string]string{"plaintext": msg, "aad": aad}, &ct); code != 200 {
		t.Fatalf("encrypt: %d %s", code, raw)
	}

	// Rotate: the DEK is rewrapped, the ciphertext is not rewritten, and decrypts.
	resp, err := d.azkeys().RotateKey(t.Context(), "cmk", nil)
	must(t, err)
	waitVersion(t, d, "acme", resp.Key.KID.Version())
	var pt plaintext
	if code, raw := call(t, "POST", base+"acme/decrypt", "", map[string]string{"ciphertext": ct.Ciphertext, "aad": aad}, &pt); code != 200 || pt.Plaintext != msg {
		t.Fatalf("decrypt after rotation: %d %s", code, raw)
	}

	// Disabled: 423 with the reason and since; enabled again: 200.
	setKeyEnabled(t, d.azkeys(), "cmk", false)
	eventually.True(t, 30*time.Second, "423 for a disabled key", func() bool {
		code, raw := call(t, "POST", base+"acme/decrypt", "", map[string]string{"ciphertext": ct.Ciphertext, "aad": aad}, nil)
		return code == http.StatusLocked && strings.Contains(raw, `"reason":"disabled"`) && strings.Contains(raw, `"since"`)
	})
	setKeyEnabled(t, d.azkeys(), "cmk", true)
	eventually.True(t, 30*time.Second, "200 once the key is enabled", func() bool {
		code, _ := call(t, "POST", base+"acme/decrypt", "", map[string]string{"ciphertext": ct.Ciphertext, "aad": aad}, nil)
		return code == http.StatusOK
	})

	// Too large: 413. Tampered: 400.
	big := base64.StdEncoding.EncodeToString(make([]byte, api.DefaultMaxBody+1))
	if code, raw := call(t, "POST", base+"acme/encrypt", "", map[string]string{"plaintext": big}, nil); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized encrypt: %d %s", code, raw)
	}
	raw, _ := base64.StdEncoding.DecodeString(ct.Ciphertext)
	raw[len(raw)-1] ^= 1
	tampered := base64.StdEncoding.EncodeToString(raw)
	if code, body := call(t, "POST", base+"acme/decrypt", "", map[string]string{"ciphertext": tampered, "aad": aad}, nil); code != http.StatusBadRequest {
		t.Fatalf("tampered decrypt: %d %s", code, body)
	}

	// Destroyed: the ciphertext can never be decrypted again, not even
	// under a tenant of the same name.
	d.must("", "tenant", "destroy", "acme", "--yes")
	if code, body := call(t, "POST", base+"acme/decrypt", "", map[string]string{"ciphertext": ct.Ciphertext, "aad": aad}, nil); code != http.StatusNotFound {
		t.Fatalf("decrypt after destroy: %d %s", code, body)
	}
	d.must("", "tenant", "add", "acme")
	if code, body := call(t, "POST", base+"acme/decrypt", "", map[string]string{"ciphertext": ct.Ciphertext, "aad": aad}, nil); code != http.StatusBadRequest {
		t.Fatalf("decrypt after destroy and a new tenant of that name: %d %s", code, body)
	}
	waitStatus(t, d.jetstream(), "acme", "tenant.destroyed", 1, 30*time.Second)
}

// A `cmkd run` serving the data API with Entra ID tokens beside `cmkd dev`
// (the same store): a token for tenant A on tenant B → 403; a forged or
// expired token → 401; no token → 401; a valid one → 200.
func TestE2EDataAPIAuth(t *testing.T) {
	t.Parallel()
	d := startDev(t, t.TempDir())
	d.must("", "tenant", "add", "acme")
	d.must("", "tenant", "add", "beta")

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	forger, err := rsa.GenerateKey(rand.Reader, 2048)
	must(t, err)
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "kid": "k1",
			"n": base64.RawURLEncoding.EncodeToString(key.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(key.E)).Bytes()),
		}}})
	}))
	t.Cleanup(jwks.Close)
	const issuer, audience = "https://login.example.test/tenant/v2.0", "api://cmkd"
	token := func(k *rsa.PrivateKey, app string, exp time.Time) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": issuer, "aud": audience, "azp": app,
			"exp": exp.Unix(), "iat": time.Now().Add(-2 * time.Hour).Unix()})
		tok.Header["kid"] = "k1"
		s, err := tok.SignedString(k)
		must(t, err)
		return s
	}

	cfg := *d.cfg
	apiAddr, err := freeAddr()
	must(t, err)
	metricsAddr, err := freeAddr()
	must(t, err)
	cfg.Instance, cfg.HTTP.Listen = "api", metricsAddr
	cfg.Sources = Sources{}
	cfg.API = APIConfig{Listen: apiAddr, Auth: api.Auth{
		Entra:   &api.Entra{Issuer: issuer, Audience: audience, JWKSURL: jwks.URL},
		Tenants: map[string][]string{"app-a": {"acme"}},
	}}
	path := filepath.Join(t.TempDir(), "api.yaml")
	must(t, writeConfig(path, &cfg))
	run := exec.Command(d.bin, "run", "--config", path)
	dieWithTest(run)
	var logs syncBuffer
	run.Stdout, run.Stderr = &logs, &logs
	must(t, run.Start())
	t.Cleanup(func() { _ = run.Process.Kill(); _ = run.Wait() })
	eventually.True(t, 60*time.Second, "cmkd run's data API", func() bool { return ready(metricsAddr) })

	base := "http://" + apiAddr + "/v1/tenants/"
	body := map[string]string{"plaintext": base64.StdEncoding.EncodeToString([]byte("x"))}
	good := token(key, "app-a", time.Now().Add(time.Hour))
	for _, c := range []struct {
		name, tenant, token string
		want                int
	}{
		{"valid token, its tenant", "acme", good, http.StatusOK},
		{"valid token, another tenant", "beta", good, http.StatusForbidden},
		{"forged signature", "acme", token(forger, "app-a", time.Now().Add(time.Hour)), http.StatusUnauthorized},
		{"expired", "acme", token(key, "app-a", time.Now().Add(-time.Hour)), http.StatusUnauthorized},
		{"no token", "acme", "", http.StatusUnauthorized},
	} {
		if code, raw := call(t, "POST", base+c.tenant+"/encrypt", c.token, body, nil); code != c.want {
			t.Errorf("%s: %d, want %d: %s\ncmkd run's log:\n%s", c.name, code, c.want, raw, tail(logs.String(), 20))
		}
	}
}
