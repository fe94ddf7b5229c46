package keyvault

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzBackupKey seals the blobs of testdata/fuzz/FuzzRestore, so that the
// seeds open in every process.
var fuzzBackupKey = bytes.Repeat([]byte{0x42}, backupKeySize)

// fuzzVault is an emulator driven without a listener, with one key of
// every kind the new operations take.
func fuzzVault(f *testing.F) *Server {
	f.Helper()
	srv, err := newServer(Config{ThrottleLimit: -1})
	if err != nil {
		f.Fatal(err)
	}
	srv.vault.backupKey = fuzzBackupKey
	for name, body := range map[string]string{
		"rsa":  `{"kty":"RSA"}`,
		"p256": `{"kty":"EC","crv":"P-256"}`, "p256k": `{"kty":"EC-HSM","crv":"P-256K"}`,
		"p384": `{"kty":"EC","crv":"P-384"}`, "p521": `{"kty":"EC","crv":"P-521"}`,
		"aes128": `{"kty":"oct-HSM","key_size":128}`, "aes256": `{"kty":"oct","key_size":256}`,
	} {
		if code, out := fuzzDo(srv, "POST", "/keys/"+name+"/create", body); code != http.StatusOK {
			f.Fatalf("create %s: %d %s", name, code, out)
		}
	}
	return srv
}

func fuzzDo(srv *Server, method, path, body string) (int, []byte) {
	req := httptest.NewRequest(method, "https://127.0.0.1"+path+"?api-version=2025-07-01", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer fuzz")
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// wantKeyVaultAnswer fails unless an answer is a success or a Key Vault
// error body.
func wantKeyVaultAnswer(t *testing.T, code int, body []byte) {
	t.Helper()
	if code < 400 {
		return
	}
	var e struct {
		Error *struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == nil || e.Error.Code == "" || e.Error.Message == "" {
		t.Fatalf("answered %d with a non Key Vault body: %q", code, body)
	}
}

var fuzzKeys = []string{"rsa", "p256", "p256k", "p384", "p521", "aes128", "aes256"}

// FuzzSignVerify feeds sign and verify bodies to every kind of key. A
// signature the emulator made must verify, and must not verify against
// another digest.
func FuzzSignVerify(f *testing.F) {
	srv := fuzzVault(f)
	d32, d48, d64 := strings.Repeat("A", 43), strings.Repeat("A", 64), strings.Repeat("A", 86)
	for _, s := range []struct {
		key  uint8
		body string
	}{
		{0, `{"alg":"RS256","value":"` + d32 + `"}`}, {0, `{"alg":"PS512","value":"` + d64 + `"}`},
		{1, `{"alg":"ES256","value":"` + d32 + `"}`}, {2, `{"alg":"ES256K","value":"` + d32 + `"}`},
		{3, `{"alg":"ES384","value":"` + d48 + `"}`}, {4, `{"alg":"ES512","value":"` + d64 + `"}`},
		{1, `{"alg":"ES384","value":"` + d48 + `"}`}, {5, `{"alg":"HS256","value":"` + d32 + `"}`},
		{0, `{"alg":"RS256","value":"` + d32 + `=="}`}, {0, `{"alg":"RS256","value":"not base64!"}`},
		{2, `{"alg":"ES256K"}`}, {0, `{"value":"` + d32 + `"}`}, {0, `{"alg":"RS256","value":null}`}, {0, `[]`},
	} {
		f.Add(s.key, s.body)
	}
	f.Fuzz(func(t *testing.T, key uint8, body string) {
		name := fuzzKeys[int(key)%len(fuzzKeys)]
		code, out := fuzzDo(srv, "POST", "/keys/"+name+"/sign", body)
		wantKeyVaultAnswer(t, code, out)
		// The same body, read as a verify request with the digest under
		// its own name, must never break the emulator either.
		vcode, vout := fuzzDo(srv, "POST", "/keys/"+name+"/verify", strings.Replace(body, `"value"`, `"digest"`, 1))
		wantKeyVaultAnswer(t, vcode, vout)
		if code != http.StatusOK {
			return
		}
		var req signReq
		var res cryptoResp
		if json.Unmarshal([]byte(body), &req) != nil || json.Unmarshal(out, &res) != nil {
			t.Fatalf("signed, but the body or answer does not decode: %s", out)
		}
		digest, _ := unb64("value", *req.Value)
		if !fuzzVerifies(t, srv, name, req.Alg, digest, res.Value) {
			t.Fatalf("%s: the emulator's own %s signature does not verify", name, req.Alg)
		}
		if fuzzVerifies(t, srv, name, req.Alg, tampered(digest), res.Value) {
			t.Fatalf("%s: a %s signature verifies against another digest", name, req.Alg)
		}
	})
}

func fuzzVerifies(t *testing.T, srv *Server, name, alg string, digest []byte, sig string) bool {
	t.Helper()
	body, _ := json.Marshal(verifyReq{Alg: alg, Digest: ptr(b64(digest)), Signature: &sig})
	code, out := fuzzDo(srv, "POST", "/keys/"+name+"/verify", string(body))
	var res verifyResp
	if code != http.StatusOK || json.Unmarshal(out, &res) != nil {
		t.Fatalf("verify %s: %d %s", name, code, out)
	}
	return res.Value
}

// FuzzRestore feeds restore blobs. Seeds under testdata/fuzz/FuzzRestore
// are genuine blobs (RSA with two versions and a policy, P-256K, oct)
// sealed with fuzzBackupKey. Nothing that is not a whole genuine blob may
// restore, and a restored key must be usable.
func FuzzRestore(f *testing.F) {
	srv := fuzzVault(f)
	f.Add([]byte{})
	f.Add([]byte(backupMagic))
	f.Add([]byte("&AzureKeyVaultKeyBackupV1.microsoft.com"))
	f.Fuzz(func(t *testing.T, blob []byte) {
		body, _ := json.Marshal(restoreReq{Value: ptr(base64.RawURLEncoding.EncodeToString(blob))})
		code, out := fuzzDo(srv, "POST", "/keys/restore", string(body))
		wantKeyVaultAnswer(t, code, out)
		switch code {
		case http.StatusOK:
		case http.StatusBadRequest, http.StatusConflict:
			return
		default:
			t.Fatalf("restore answered %d: %s", code, out)
		}
		if _, ok := openBackup(fuzzBackupKey, blob); !ok {
			t.Fatal("a blob that does not open restored")
		}
		var kb keyBundle
		if err := json.Unmarshal(out, &kb); err != nil {
			t.Fatal(err)
		}
		name := kb.Key.Kid[strings.Index(kb.Key.Kid, "/keys/")+len("/keys/") : strings.LastIndex(kb.Key.Kid, "/")]
		if code, out := fuzzDo(srv, "GET", "/keys/"+name+"/", ""); code != http.StatusOK {
			t.Fatalf("the restored key does not answer: %d %s", code, out)
		}
		if code, _ := fuzzDo(srv, "POST", "/keys/restore", string(body)); code != http.StatusConflict {
			t.Fatalf("a second restore of %s answered %d, want 409", name, code)
		}
		fuzzDo(srv, "DELETE", "/keys/"+name, "")
		fuzzDo(srv, "DELETE", "/deletedkeys/"+name, "")
	})
}

// FuzzSymmetric feeds encrypt and decrypt bodies (AES-GCM, AES-CBC with
// and without padding, and whatever else) to the AES keys. What encrypts
// must decrypt back to the same bytes.
func FuzzSymmetric(f *testing.F) {
	srv := fuzzVault(f)
	iv16, iv12 := b64([]byte("0123456789ABCDEF")), b64(make([]byte, 12))
	for _, s := range []struct {
		key  bool
		body string
	}{
		{true, `{"alg":"A256CBCPAD","iv":"` + iv16 + `","value":"cGxhaW50ZXh0"}`},
		{true, `{"alg":"A256CBC","iv":"` + iv16 + `","value":"` + b64(make([]byte, 32)) + `"}`},
		{false, `{"alg":"A128CBCPAD","iv":"` + iv16 + `","value":""}`},
		{false, `{"alg":"A128CBC","iv":"` + iv16 + `","value":"cGxhaW50ZXh0"}`},
		{true, `{"alg":"A256GCM","value":"cGxhaW50ZXh0","aad":"YWFk"}`},
		{true, `{"alg":"A256GCM","iv":"` + iv12 + `","value":"cGxhaW50ZXh0"}`},
		{false, `{"alg":"A128CBCPAD","value":"cGxhaW50ZXh0"}`},
		{false, `{"alg":"A128CBCPAD","iv":"AAAA","value":"cGxhaW50ZXh0"}`},
		{true, `{"alg":"A128GCM","value":"cGxhaW50ZXh0"}`},
		{true, `{"alg":"RSA-OAEP","value":"cGxhaW50ZXh0"}`},
	} {
		f.Add(s.key, s.body)
	}
	f.Fuzz(func(t *testing.T, big bool, body string) {
		name := map[bool]string{false: "aes128", true: "aes256"}[big]
		code, out := fuzzDo(srv, "POST", "/keys/"+name+"/encrypt", body)
		wantKeyVaultAnswer(t, code, out)
		dcode, dout := fuzzDo(srv, "POST", "/keys/"+name+"/decrypt", body)
		wantKeyVaultAnswer(t, dcode, dout)
		if code != http.StatusOK {
			return
		}
		var req cryptoReq
		var res cryptoResp
		if json.Unmarshal([]byte(body), &req) != nil || json.Unmarshal(out, &res) != nil {
			t.Fatalf("encrypted, but the body or answer does not decode: %s", out)
		}
		back, _ := json.Marshal(cryptoReq{Alg: req.Alg, Value: &res.Value, IV: res.IV, AAD: res.AAD, Tag: res.Tag})
		code, out = fuzzDo(srv, "POST", "/keys/"+name+"/decrypt", string(back))
		var plain cryptoResp
		if code != http.StatusOK || json.Unmarshal(out, &plain) != nil {
			t.Fatalf("%s: what encrypted does not decrypt: %d %s", req.Alg, code, out)
		}
		want, _ := unb64("value", *req.Value)
		if got, _ := unb64("value", plain.Value); !bytes.Equal(got, want) {
			t.Fatalf("%s: decrypted %x, encrypted %x", req.Alg, got, want)
		}
	})
}
