package api_test

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/api"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
	"github.com/cmkd-io/cmkd/store/storetest"
)

const (
	issuer   = "https://login.microsoftonline.com/test-tenant/v2.0"
	audience = "api://cmkd"
	kid      = "key-1"
	maxBody  = 4096
)

var (
	rsaOnce        sync.Once
	signer, forger *rsa.PrivateKey
)

// rsaKeys makes the token signing key and a forger's key once: RSA key
// generation is slow under the race detector.
func rsaKeys(t *testing.T) (*rsa.PrivateKey, *rsa.PrivateKey) {
	rsaOnce.Do(func() {
		var err error
		if signer, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
		if forger, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return signer, forger
}

type fixture struct {
	t      *testing.T
	h      *storetest.Harness
	s      *store.Store
	srv    *httptest.Server
	reg    *prometheus.Registry
	ca     *x509.Certificate
	caKey  *ecdsa.PrivateKey
	signer *rsa.PrivateKey
	forger *rsa.PrivateKey
}

// newFixture starts a real store (Key Vault emulator, SQLite) with tenants
// a and b, a JWKS endpoint, and the API over TLS asking for client
// certificates signed by a test CA.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{t: t, h: storetest.NewHarness(t), reg: prometheus.NewRegistry()}
	f.signer, f.forger = rsaKeys(t)
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "cmkd.db")})
	if err != nil {
		t.Fatal(err)
	}
	f.s = f.h.NewStore(t, b, nil)
	for _, id := range []string{"a", "b"} {
		if _, err := f.s.AddTenant(t.Context(), id, f.h.Key); err != nil {
			t.Fatal(err)
		}
	}

	pub := f.signer.PublicKey
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "use": "sig", "kid": kid,
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	}))
	t.Cleanup(jwks.Close)

	h, err := api.New(api.Config{
		Store: f.s,
		Auth: api.Auth{
			Entra: &api.Entra{Issuer: issuer, Audience: audience, JWKSURL: jwks.URL},
			Tenants: map[string][]string{
				"app-a":                    {"a"},
				"svc-b":                    {"b"},
				"app-all":                  {"*"},
				"spiffe://cmkd.test/svc-a": {"a"},
			},
		},
		MaxBody:    maxBody,
		Registerer: f.reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	f.ca, f.caKey = newCA(t)
	pool := x509.NewCertPool()
	pool.AddCert(f.ca)
	f.srv = httptest.NewUnstartedServer(h)
	f.srv.TLS = &tls.Config{ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool, MinVersion: tls.VersionTLS12}
	f.srv.StartTLS()
	t.Cleanup(f.srv.Close)
	return f
}

// token is a token from issuer for audience, valid for an hour unless
// claims say otherwise, signed by key.
func (f *fixture) token(key *rsa.PrivateKey, claims jwt.MapClaims) string {
	f.t.Helper()
	c := jwt.MapClaims{"iss": issuer, "aud": audience, "exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	for k, v := range claims {
		c[k] = v
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = kid
	s, err := tok.SignedString(key)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

// app is a valid token of application id.
func (f *fixture) app(id string, roles ...string) string {
	c := jwt.MapClaims{"azp": id, "oid": "oid-" + id}
	if len(roles) > 0 {
		c["roles"] = roles
	}
	return f.token(f.signer, c)
}

func (f *fixture) admin() string { return f.app("operator", api.DefaultAdminRole) }

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) problem(t *testing.T) map[string]any {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("content type %q, body %s", ct, r.body)
	}
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if int(p["status"].(float64)) != r.code || p["type"] == "" || p["title"] == "" {
		t.Fatalf("problem %v for status %d", p, r.code)
	}
	return p
}

// do sends a request with bearer token tok (none if empty) through c (the
// server's client if nil).
func (f *fixture) do(c *http.Client, method, path, tok string, body []byte, ctype string) response {
	f.t.Helper()
	if c == nil {
		c = f.srv.Client()
	}
	req, err := http.NewRequestWithContext(f.t.Context(), method, f.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		f.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := c.Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		f.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

func (f *fixture) json(method, path, tok string, v any) response {
	f.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		f.t.Fatal(err)
	}
	return f.do(nil, method, path, tok, b, "application/json")
}

func want(t *testing.T, r response, code int) {
	t.Helper()
	if r.code != code {
		t.Fatalf("status %d, want %d: %s", r.code, code, r.body)
	}
}

func wantProblem(t *testing.T, r response, code int, typ string) map[string]any {
	t.Helper()
	want(t, r, code)
	p := r.problem(t)
	if !strings.HasSuffix(p["type"].(string), "/"+typ) {
		t.Fatalf("problem type %v, want .../%s", p["type"], typ)
	}
	return p
}

func TestRecords(t *testing.T) {
	f := newFixture(t)
	tok := f.app("app-a")
	want(t, f.do(nil, "PUT", "/v1/tenants/a/records/k1", tok, []byte("hello"), "application/octet-stream"), 204)
	r := f.do(nil, "GET", "/v1/tenants/a/records/k1", tok, nil, "")
	want(t, r, 200)
	if string(r.body) != "hello" || r.header.Get("Content-Type") != "application/octet-stream" {
		t.Fatalf("got %q as %q", r.body, r.header.Get("Content-Type"))
	}
	want(t, f.do(nil, "DELETE", "/v1/tenants/a/records/k1", tok, nil, ""), 204)
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/a/records/k1", tok, nil, ""), 404, "record-not-found")
	wantProblem(t, f.do(nil, "DELETE", "/v1/tenants/a/records/k1", tok, nil, ""), 404, "record-not-found")

	// A stored record moved to another key fails its integrity check: the
	// store's fault, so 500, with the integrity type.
	want(t, f.do(nil, "PUT", "/v1/tenants/a/records/k2", tok, []byte("moved"), ""), 204)
	be := f.s.Backend()
	blob, err := be.GetRecord(t.Context(), "a", "k2")
	if err != nil {
		t.Fatal(err)
	}
	deks, err := be.TenantDEKs(t.Context(), "a", "", 1)
	if err != nil || len(deks) == 0 {
		t.Fatal(deks, err)
	}
	if err := be.PutRecord(t.Context(), "a", "k3", deks[0].ID, blob); err != nil {
		t.Fatal(err)
	}
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/a/records/k3", tok, nil, ""), 500, "integrity")

	// A tenant that does not exist is told apart from a missing record.
	all := f.app("app-all")
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/nobody/records/k1", all, nil, ""), 404, "tenant-not-found")
	wantProblem(t, f.do(nil, "PUT", "/v1/tenants/nobody/records/k1", all, []byte("x"), ""), 404, "tenant-not-found")

	// Over MaxBody: 413, whether the limit reader or the length check sees it.
	wantProblem(t, f.do(nil, "PUT", "/v1/tenants/a/records/big", tok, make([]byte, maxBody+1), ""), 413, "too-large")
	wantProblem(t, f.do(nil, "PUT", "/v1/tenants/a/records/big", tok, make([]byte, 1<<20), ""), 413, "too-large")
}

func TestAuthentication(t *testing.T) {
	f := newFixture(t)
	path := "/v1/tenants/a/records/k"
	r := f.do(nil, "GET", path, "", nil, "")
	wantProblem(t, r, 401, "unauthorized")
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
	}
	for name, tok := range map[string]string{
		"forged":       f.token(f.forger, jwt.MapClaims{"azp": "app-a"}),
		"expired":      f.token(f.signer, jwt.MapClaims{"azp": "app-a", "exp": time.Now().Add(-time.Hour).Unix()}),
		"not yet":      f.token(f.signer, jwt.MapClaims{"azp": "app-a", "nbf": time.Now().Add(time.Hour).Unix()}),
		"wrong aud":    f.token(f.signer, jwt.MapClaims{"azp": "app-a", "aud": "api://other"}),
		"wrong issuer": f.token(f.signer, jwt.MapClaims{"azp": "app-a", "iss": "https://evil.example/v2.0"}),
		"no exp":       f.token(f.signer, jwt.MapClaims{"azp": "app-a", "exp": nil}),
		"garbage":      "not.a.jwt",
	} {
		t.Run(name, func(t *testing.T) {
			r := f.do(nil, "GET", path, tok, nil, "")
			wantProblem(t, r, 401, "unauthorized")
			if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	// An HS256 token "signed" with the public key is refused too.
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": issuer, "aud": audience, "azp": "app-a", "exp": time.Now().Add(time.Hour).Unix()})
	hs.Header["kid"] = kid
	raw, err := hs.SignedString(x509.MarshalPKCS1PublicKey(&f.signer.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	wantProblem(t, f.do(nil, "GET", path, raw, nil, ""), 401, "unauthorized")
}

func TestAuthorization(t *testing.T) {
	f := newFixture(t)
	a, b := f.app("app-a"), f.app("svc-b")
	want(t, f.do(nil, "PUT", "/v1/tenants/a/records/k", a, []byte("a's"), ""), 204)
	// A on B, either way round and on every route.
	for _, c := range []struct{ method, path, tok string }{
		{"GET", "/v1/tenants/a/records/k", b},
		{"PUT", "/v1/tenants/a/records/k", b},
		{"DELETE", "/v1/tenants/a/records/k", b},
		{"GET", "/v1/tenants/b/records/k", a},
		{"POST", "/v1/tenants/b/encrypt", a},
		{"POST", "/v1/tenants/b/decrypt", a},
		// Lifecycle routes need the admin role, even for one's own tenant.
		{"GET", "/v1/tenants/a", a},
		{"DELETE", "/v1/tenants/a", a},
		{"POST", "/v1/tenants", f.app("app-all")},
	} {
		p := wantProblem(t, f.do(nil, c.method, c.path, c.tok, []byte(`{}`), "application/json"), 403, "forbidden")
		if c.path != "/v1/tenants" && !strings.Contains(c.path, "/"+p["tenant"].(string)+"/") && !strings.HasSuffix(c.path, "/"+p["tenant"].(string)) {
			t.Fatalf("%s %s: problem names tenant %v", c.method, c.path, p["tenant"])
		}
	}
	// The oid identifies the caller as well as the azp; a "*" caller may
	// use every tenant; the admin role every tenant too.
	oidOnly := f.token(f.signer, jwt.MapClaims{"oid": "app-a"})
	want(t, f.do(nil, "GET", "/v1/tenants/a/records/k", oidOnly, nil, ""), 200)
	want(t, f.do(nil, "GET", "/v1/tenants/a/records/k", f.app("app-all"), nil, ""), 200)
	want(t, f.do(nil, "GET", "/v1/tenants/a/records/k", f.admin(), nil, ""), 200)
	// A role of another name is no admin.
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/a", f.app("x", "Tenants.Read"), nil, ""), 403, "forbidden")
}

// newCA makes a test CA for client certificates.
func newCA(t *testing.T) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cmkd test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return cert, key
}

// client is an HTTPS client presenting a certificate for cn and uris,
// issued by parent (self-signed when nil).
func (f *fixture) client(cn string, uris []string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) *http.Client {
	t := f.t
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, s := range uris {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, u)
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c := f.srv.Client()
	tr := c.Transport.(*http.Transport).Clone()
	tr.TLSClientConfig.Certificates = []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
	return &http.Client{Transport: tr}
}

func TestClientCertificates(t *testing.T) {
	f := newFixture(t)
	b := f.client("svc-b", nil, f.ca, f.caKey)
	want(t, f.do(b, "PUT", "/v1/tenants/b/records/k", "", []byte("b's"), ""), 204)
	r := f.do(b, "GET", "/v1/tenants/b/records/k", "", nil, "")
	want(t, r, 200)
	if string(r.body) != "b's" {
		t.Fatalf("read %q", r.body)
	}
	wantProblem(t, f.do(b, "GET", "/v1/tenants/a/records/k", "", nil, ""), 403, "forbidden")
	wantProblem(t, f.do(b, "GET", "/v1/tenants/b", "", nil, ""), 403, "forbidden")

	// A URI SAN identifies the caller when its CN is unknown.
	spiffe := f.client("unknown", []string{"spiffe://cmkd.test/svc-a"}, f.ca, f.caKey)
	want(t, f.do(spiffe, "PUT", "/v1/tenants/a/records/k", "", []byte("a's"), ""), 204)
	wantProblem(t, f.do(spiffe, "GET", "/v1/tenants/b/records/k", "", nil, ""), 403, "forbidden")

	// A certificate of an unknown CN is authenticated, but allowed nothing.
	wantProblem(t, f.do(f.client("stranger", nil, f.ca, f.caKey), "GET", "/v1/tenants/b/records/k", "", nil, ""), 403, "forbidden")

	// A certificate the CA did not issue is never a verified chain: the
	// handshake fails, or the request is unauthenticated.
	self := f.client("svc-b", nil, nil, nil)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", f.srv.URL+"/v1/tenants/b/records/k", nil)
	if resp, err := self.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Fatalf("self-signed certificate: status %d", resp.StatusCode)
		}
	}
}

func TestBadBodies(t *testing.T) {
	f := newFixture(t)
	tok := f.app("app-a")
	for name, body := range map[string]string{
		"not json":      `{"plaintext":`,
		"bad base64":    `{"plaintext":"%%%"}`,
		"unknown field": `{"plaintext":"aGk=","key":"x"}`,
		"two objects":   `{"plaintext":"aGk="}{}`,
		"wrong type":    `{"plaintext":42}`,
	} {
		t.Run(name, func(t *testing.T) {
			wantProblem(t, f.do(nil, "POST", "/v1/tenants/a/encrypt", tok, []byte(body), "application/json"), 400, "bad-request")
		})
	}
	wantProblem(t, f.json("POST", "/v1/tenants/a/decrypt", tok, map[string]string{}), 400, "bad-request")
	// Plaintext over MaxBody once decoded, and a body over the reader's limit.
	wantProblem(t, f.json("POST", "/v1/tenants/a/encrypt", tok, map[string][]byte{"plaintext": make([]byte, maxBody+1)}), 413, "too-large")
	wantProblem(t, f.json("POST", "/v1/tenants/a/encrypt", tok, map[string][]byte{"plaintext": make([]byte, 1<<20)}), 413, "too-large")
	// An invalid record key or tenant id.
	all := f.app("app-all")
	wantProblem(t, f.do(nil, "PUT", "/v1/tenants/a/records/"+strings.Repeat("k", 2000), all, []byte("x"), ""), 400, "bad-request")
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/a.b/records/k", all, nil, ""), 400, "bad-request")
}

func TestSealed(t *testing.T) {
	f := newFixture(t)
	tok := f.app("svc-b")
	want(t, f.do(nil, "PUT", "/v1/tenants/b/records/k", tok, []byte("b's"), ""), 204)
	r := f.json("POST", "/v1/tenants/b/encrypt", tok, map[string][]byte{"plaintext": []byte("b's")})
	want(t, r, 200)
	var enc struct{ Ciphertext []byte }
	if err := json.Unmarshal(r.body, &enc); err != nil {
		t.Fatal(err)
	}
	ciphertext := enc.Ciphertext
	if err := f.s.Seal(t.Context(), "b", cmkd.ReasonDisabled, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		method, path string
		body         []byte
	}{
		{"GET", "/v1/tenants/b/records/k", nil},
		{"PUT", "/v1/tenants/b/records/k", []byte("more")},
	} {
		p := wantProblem(t, f.do(nil, c.method, c.path, tok, c.body, ""), 423, "tenant-sealed")
		if p["tenant"] != "b" || p["reason"] != cmkd.ReasonDisabled {
			t.Fatalf("%s: problem %v", c.method, p)
		}
		since, err := time.Parse(time.RFC3339Nano, p["since"].(string))
		if err != nil || !since.Equal(f.h.Clock.Now().UTC()) {
			t.Fatalf("since %v (%v), sealed at %v", p["since"], err, f.h.Clock.Now())
		}
	}
	for path, body := range map[string]map[string][]byte{
		"/v1/tenants/b/encrypt": {"plaintext": []byte("x")},
		"/v1/tenants/b/decrypt": {"ciphertext": ciphertext},
	} {
		p := wantProblem(t, f.json("POST", path, tok, body), 423, "tenant-sealed")
		if p["reason"] != cmkd.ReasonDisabled || p["since"] == nil {
			t.Fatalf("%s: problem %v", path, p)
		}
	}
	r = f.do(nil, "GET", "/v1/tenants/b", f.admin(), nil, "")
	want(t, r, 200)
	var ten api.Tenant
	if err := json.Unmarshal(r.body, &ten); err != nil {
		t.Fatal(err)
	}
	if ten.State != store.StateSealed || ten.Reason != cmkd.ReasonDisabled || ten.Since == nil {
		t.Fatalf("tenant %+v", ten)
	}
	// Tenant a is untouched.
	want(t, f.do(nil, "PUT", "/v1/tenants/a/records/k", f.app("app-a"), []byte("a's"), ""), 204)
}

func TestTenantLifecycle(t *testing.T) {
	f := newFixture(t)
	adm := f.admin()
	r := f.json("POST", "/v1/tenants", adm, map[string]string{"id": "c", "key": f.h.Key.URL()})
	want(t, r, 201)
	if r.header.Get("Location") != "/v1/tenants/c" {
		t.Fatalf("location %q", r.header.Get("Location"))
	}
	var ten api.Tenant
	if err := json.Unmarshal(r.body, &ten); err != nil {
		t.Fatal(err)
	}
	if ten.ID != "c" || ten.State != store.StateActive || ten.Key != f.h.Key.URL() || len(ten.Layers) != 1 || ten.Layers[0].Layer != store.LayerCustomer {
		t.Fatalf("tenant %+v", ten)
	}
	wantProblem(t, f.json("POST", "/v1/tenants", adm, map[string]string{"id": "c", "key": f.h.Key.URL()}), 409, "tenant-exists")
	wantProblem(t, f.json("POST", "/v1/tenants", adm, map[string]string{"id": "d", "key": "not a key"}), 400, "bad-request")
	wantProblem(t, f.json("POST", "/v1/tenants", adm, map[string]string{"id": "no.dots", "key": f.h.Key.URL()}), 400, "bad-request")
	// No customer key and no platform key configured: refused.
	wantProblem(t, f.json("POST", "/v1/tenants", adm, map[string]string{"id": "d"}), 400, "bad-request")

	r = f.do(nil, "GET", "/v1/tenants/c", adm, nil, "")
	want(t, r, 200)
	var got map[string]any
	if err := json.Unmarshal(r.body, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "state", "key", "layers", "created_at"} {
		if _, ok := got[k]; !ok {
			t.Fatalf("tenant lacks %s: %s", k, r.body)
		}
	}
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/nobody", adm, nil, ""), 404, "tenant-not-found")

	// Crypto-shredding: records and tenant gone, and a ciphertext kept
	// outside does not decrypt even under a new tenant of the same id.
	want(t, f.do(nil, "PUT", "/v1/tenants/c/records/k", adm, []byte("c's"), ""), 204)
	r = f.json("POST", "/v1/tenants/c/encrypt", adm, map[string][]byte{"plaintext": []byte("c's")})
	want(t, r, 200)
	var enc struct{ Ciphertext []byte }
	if err := json.Unmarshal(r.body, &enc); err != nil {
		t.Fatal(err)
	}
	want(t, f.do(nil, "DELETE", "/v1/tenants/c", adm, nil, ""), 204)
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/c/records/k", adm, nil, ""), 404, "tenant-not-found")
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/c", adm, nil, ""), 404, "tenant-not-found")
	wantProblem(t, f.json("POST", "/v1/tenants/c/decrypt", adm, map[string][]byte{"ciphertext": enc.Ciphertext}), 404, "tenant-not-found")
	wantProblem(t, f.do(nil, "DELETE", "/v1/tenants/c", adm, nil, ""), 404, "tenant-not-found")
	want(t, f.json("POST", "/v1/tenants", adm, map[string]string{"id": "c", "key": f.h.Key.URL()}), 201)
	wantProblem(t, f.json("POST", "/v1/tenants/c/decrypt", adm, map[string][]byte{"ciphertext": enc.Ciphertext}), 400, "integrity")
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/c/records/k", adm, nil, ""), 404, "record-not-found")

	// A sealed tenant can be shredded too.
	if err := f.s.Seal(t.Context(), "c", cmkd.ReasonDeleted, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	want(t, f.do(nil, "DELETE", "/v1/tenants/c", adm, nil, ""), 204)
	wantProblem(t, f.do(nil, "GET", "/v1/tenants/c", adm, nil, ""), 404, "tenant-not-found")
}

func TestEncryptDecrypt(t *testing.T) {
	f := newFixture(t)
	tok := f.app("app-a")
	r := f.json("POST", "/v1/tenants/a/encrypt", tok, map[string][]byte{"plaintext": []byte("secret"), "aad": []byte("row 7")})
	want(t, r, 200)
	var enc struct{ Ciphertext []byte }
	if err := json.Unmarshal(r.body, &enc); err != nil || len(enc.Ciphertext) == 0 {
		t.Fatalf("%s: %v", r.body, err)
	}
	r = f.json("POST", "/v1/tenants/a/decrypt", tok, map[string][]byte{"ciphertext": enc.Ciphertext, "aad": []byte("row 7")})
	want(t, r, 200)
	var dec struct{ Plaintext []byte }
	if err := json.Unmarshal(r.body, &dec); err != nil || string(dec.Plaintext) != "secret" {
		t.Fatalf("%s: %v", r.body, err)
	}
	// Wrong AAD, a flipped byte, another tenant's ciphertext: 400.
	wantProblem(t, f.json("POST", "/v1/tenants/a/decrypt", tok, map[string][]byte{"ciphertext": enc.Ciphertext, "aad": []byte("row 8")}), 400, "integrity")
	tampered := bytes.Clone(enc.Ciphertext)
	tampered[len(tampered)-1] ^= 1
	wantProblem(t, f.json("POST", "/v1/tenants/a/decrypt", tok, map[string][]byte{"ciphertext": tampered, "aad": []byte("row 7")}), 400, "integrity")
	all := f.app("app-all")
	wantProblem(t, f.json("POST", "/v1/tenants/b/decrypt", all, map[string][]byte{"ciphertext": enc.Ciphertext, "aad": []byte("row 7")}), 400, "integrity")
	wantProblem(t, f.json("POST", "/v1/tenants/a/decrypt", tok, map[string][]byte{"ciphertext": []byte("garbage")}), 400, "integrity")
	wantProblem(t, f.json("POST", "/v1/tenants/nobody/decrypt", all, map[string][]byte{"ciphertext": enc.Ciphertext}), 404, "tenant-not-found")
	// No aad at all is valid, and must be absent again to decrypt.
	r = f.json("POST", "/v1/tenants/a/encrypt", tok, map[string][]byte{"plaintext": []byte("plain")})
	want(t, r, 200)
	if err := json.Unmarshal(r.body, &enc); err != nil {
		t.Fatal(err)
	}
	want(t, f.json("POST", "/v1/tenants/a/decrypt", tok, map[string][]byte{"ciphertext": enc.Ciphertext}), 200)
	wantProblem(t, f.json("POST", "/v1/tenants/nobody/encrypt", all, map[string][]byte{"plaintext": []byte("x")}), 404, "tenant-not-found")
}

func TestMetrics(t *testing.T) {
	f := newFixture(t)
	tok := f.app("app-a")
	want(t, f.do(nil, "PUT", "/v1/tenants/a/records/k", tok, []byte("x"), ""), 204)
	want(t, f.do(nil, "GET", "/v1/tenants/a/records/k", tok, nil, ""), 200)
	want(t, f.do(nil, "GET", "/v1/tenants/a/records/k", tok, nil, ""), 200)
	want(t, f.do(nil, "GET", "/v1/tenants/b/records/k", tok, nil, ""), 403)
	want(t, f.do(nil, "GET", "/v1/tenants/a/records/k", "", nil, ""), 401)
	want(t, f.do(nil, "GET", "/nowhere", tok, nil, ""), 404)
	r := f.do(nil, "POST", "/v1/tenants/a/records/k", tok, nil, "")
	wantProblem(t, r, 405, "method-not-allowed")
	if r.header.Get("Allow") != "PUT, GET, DELETE" {
		t.Fatalf("Allow %q", r.header.Get("Allow"))
	}
	f.wantCount("cmkd_api_requests_total", map[string]string{"route": "record_put", "code": "204"}, 1)
	f.wantCount("cmkd_api_requests_total", map[string]string{"route": "record_get", "code": "200"}, 2)
	f.wantCount("cmkd_api_requests_total", map[string]string{"route": "record_get", "code": "403"}, 1)
	f.wantCount("cmkd_api_requests_total", map[string]string{"route": "record_get", "code": "401"}, 1)
	f.wantCount("cmkd_api_requests_total", map[string]string{"route": "other", "code": "404"}, 1)
	f.wantCount("cmkd_api_requests_total", map[string]string{"route": "other", "code": "405"}, 1)
	if n := testutil.CollectAndCount(f.reg, "cmkd_api_request_seconds"); n != len(api.Routes)+1 {
		t.Fatalf("%d histogram series, want one per route and other", n)
	}
}

func (f *fixture) wantCount(name string, labels map[string]string, want float64) {
	f.t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		f.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue metric
				}
			}
			if got := m.GetCounter().GetValue(); got != want {
				f.t.Fatalf("%s%v = %v, want %v", name, labels, got, want)
			}
			return
		}
	}
	f.t.Fatalf("no %s%v", name, labels)
}

func TestConfig(t *testing.T) {
	if _, err := api.New(api.Config{}); err == nil {
		t.Fatal("no store accepted")
	}
	h := storetest.NewHarness(t)
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "cmkd.db")})
	if err != nil {
		t.Fatal(err)
	}
	s := h.NewStore(t, b, nil)
	if _, err := api.New(api.Config{Store: s}); err == nil {
		t.Fatal("no authentication accepted without Anonymous")
	}
	if _, err := api.New(api.Config{Store: s, Auth: api.Auth{Entra: &api.Entra{Issuer: issuer}}}); err == nil {
		t.Fatal("entra without audience and jwks_url accepted")
	}
	// Signing keys that cannot be fetched: 503, to be retried, not 401.
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer down.Close()
	hd, err := api.New(api.Config{Store: s, Auth: api.Auth{Entra: &api.Entra{Issuer: issuer, Audience: audience, JWKSURL: down.URL}}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t}
	f.signer, f.forger = rsaKeys(t)
	req := httptest.NewRequestWithContext(t.Context(), "GET", "/v1/tenants/a/records/k", nil)
	req.Header.Set("Authorization", "Bearer "+f.app("app-a"))
	rec := httptest.NewRecorder()
	hd.ServeHTTP(rec, req)
	wantProblem(t, response{rec.Code, rec.Header(), rec.Body.Bytes()}, 503, "unavailable")

	// A request that outlives Timeout: 504.
	hd, err = api.New(api.Config{Store: s, Anonymous: true, Timeout: time.Nanosecond})
	if err != nil {
		t.Fatal(err)
	}
	rec = httptest.NewRecorder()
	hd.ServeHTTP(rec, httptest.NewRequestWithContext(t.Context(), "PUT", "/v1/tenants/a/records/k", strings.NewReader("x")))
	wantProblem(t, response{rec.Code, rec.Header(), rec.Body.Bytes()}, 504, "timeout")

	// Anonymous (cmkd dev): every route, no credentials.
	hd, err = api.New(api.Config{Store: s, Anonymous: true})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hd)
	defer srv.Close()
	body, _ := json.Marshal(map[string]string{"id": "dev", "key": h.Key.URL()})
	resp, err := srv.Client().Post(srv.URL+"/v1/tenants", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 201 {
		t.Fatalf("anonymous add tenant: %d", resp.StatusCode)
	}
}
