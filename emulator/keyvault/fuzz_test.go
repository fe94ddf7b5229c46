package keyvault

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzRequest drives routing and body decoding with arbitrary methods,
// paths and bodies. The vault must never panic, and every error answer
// must be a Key Vault error body.
func FuzzRequest(f *testing.F) {
	srv, err := newServer(Config{ThrottleLimit: -1})
	if err != nil {
		f.Fatal(err)
	}
	seed := []struct{ method, path, body string }{
		{"POST", "/keys/k1/create?api-version=7.5", `{"kty":"oct-HSM","key_size":256}`},
		{"POST", "/keys/k1/create?api-version=7.5", `{"kty":"EC","crv":"P-384","key_ops":["sign"],"attributes":{"exp":1,"nbf":2}}`},
		{"POST", "/keys/k1/wrapkey?api-version=7.5", `{"alg":"A256KW","value":"AAAAAAAAAAAAAAAAAAAAAA"}`},
		{"POST", "/keys/k1//unwrapkey?api-version=2025-07-01", `{"alg":"A256KW","value":"not base64!"}`},
		{"POST", "/keys/k1/encrypt?api-version=7.6", `{"alg":"A256GCM","value":"AA","iv":"AAAA","aad":"AA"}`},
		{"PUT", "/keys/k2?api-version=7.5", `{"key":{"kty":"RSA","n":"AQAB","e":"AQAB","d":"AQ","p":"Aw","q":"BQ"}}`},
		{"PUT", "/keys/k3?api-version=7.5", `{"key":{"kty":"EC","crv":"P-256","d":"AQ"},"Hsm":true}`},
		{"PATCH", "/keys/k1/?api-version=7.5", `{"attributes":{"enabled":false},"key_ops":["decrypt"],"tags":{"a":"b"}}`},
		{"PUT", "/keys/k1/rotationpolicy?api-version=7.5", `{"attributes":{"expiryTime":"P1Y2M3W4DT5H6M7S"},"lifetimeActions":[{"trigger":{"timeAfterCreate":"P30D"},"action":{"type":"rotate"}}]}`},
		{"GET", "/keys?api-version=7.5&maxresults=1&$skiptoken=3", ""},
		{"GET", "/keys/k1/versions?api-version=7.5&$skiptoken=-1", ""},
		{"DELETE", "/keys/k1?api-version=7.5", ""},
		{"POST", "/deletedkeys/k1/recover?api-version=7.5", ""},
		{"DELETE", "/deletedkeys/k1?api-version=7.5", ""},
		{"GET", "/keys/bad_name?api-version=7.5", ""},
		{"POST", "/keys/k1/sign?api-version=7.5", `{}`},
		{"POST", "/keys/k1/create?api-version=2025-07-01", `{"kty":"EC-HSM","crv":"P-256K"}`},
		{"POST", "/keys/k1/sign?api-version=2025-07-01", `{"alg":"ES256K","value":"ltYuKr0-Qt5fUDMPuO_ExVmYNSeAd7IemqCzPB3wehw"}`},
		{"POST", "/keys/k1//verify?api-version=2025-07-01", `{"alg":"ES256K","digest":"AA","value":"AA"}`},
		{"POST", "/keys/k1/backup?api-version=2025-07-01", ""},
		{"POST", "/keys/restore?api-version=2025-07-01", `{"value":"S2V5VmF1bHRFbXVsYXRvcktleUJhY2t1cFYxLg"}`},
		{"POST", "/rng?api-version=2025-07-01", `{"count":128}`},
		{"POST", "/keys/k1//release?api-version=2025-07-01", `{"target":"token","enc":"RSA_AES_KEY_WRAP_256"}`},
		{"POST", "/keys/k5/create?api-version=2025-07-01", `{"kty":"RSA","attributes":{"exportable":true},"release_policy":{"data":"e30"}}`},
		{"PUT", "/keys/k4?api-version=2025-07-01", `{"key":{"kty":"EC","crv":"P-256K","d":"AQ","x":"AA"}}`},
		{"POST", "/keys/k2/encrypt?api-version=2025-07-01", `{"alg":"A256CBCPAD","iv":"MDEyMzQ1Njc4OUFCQ0RFRg","value":"cGxhaW50ZXh0"}`},
		{"GET", "/secrets/x?api-version=7.5", ""},
		{"POST", "/keys/k1/create?api-version=7.5", `{"kty":`},
		{"POST", "/keys/k1/create?api-version=7.5", `[1,2]`},
	}
	for _, s := range seed {
		f.Add(s.method, s.path, s.body)
	}
	f.Fuzz(func(t *testing.T, method, path, body string) {
		if strings.Contains(body, `"key_size":3072`) || strings.Contains(body, `"key_size":4096`) {
			t.Skip("large RSA generation only makes the fuzzer slow")
		}
		req, err := http.NewRequest(method, "https://127.0.0.1"+path, strings.NewReader(body))
		if err != nil || req.URL.Host != "127.0.0.1" {
			t.Skip()
		}
		req.Header.Set("Authorization", "Bearer fuzz")
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		if rec.Code < 400 {
			return
		}
		var e struct {
			Error *struct{ Code, Message string } `json:"error"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
			t.Fatalf("%s %s answered %d with a non Key Vault body: %q", method, path, rec.Code, rec.Body.String())
		}
		if rec.Header().Get("Content-Type") != "application/json; charset=utf-8" {
			t.Fatalf("content type %q", rec.Header().Get("Content-Type"))
		}
	})
}
