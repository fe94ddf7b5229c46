package keyvault

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// hsmHost is a Managed HSM name the azkeys challenge check accepts.
const hsmHost = "emulated.managedhsm.azure.net"

// verifyingClient is azkeys with its challenge resource check ON, as cmkd
// runs it against Azure: it speaks to https://<host> and every connection
// goes to the emulator, whose certificate names 127.0.0.1.
func verifyingClient(t *testing.T, srv *Server, host string) *azkeys.Client {
	t.Helper()
	addr := strings.TrimPrefix(srv.URL(), "https://")
	tr := &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: srv.CAPool(), ServerName: "127.0.0.1"},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}
	c, err := azkeys.NewClient("https://"+host, staticToken("token"), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: tr}, Retry: azpolicy.RetryOptions{MaxRetries: -1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestHSMChallengeNamesManagedHSM(t *testing.T) {
	srv := start(t, Config{ManagedHSM: true})
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL()+"/keys/k/create?api-version=7.5", nil)
	resp, err := httpClient(srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := `Bearer authorization="https://login.microsoftonline.com/` + DefaultTenantID + `", resource="https://managedhsm.azure.net"`
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") != want {
		t.Fatalf("challenge: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	// Managed HSM's 401 has an empty body (recorded), a vault's a JSON one.
	if len(body) != 0 || resp.Header.Get("Content-Length") != "0" {
		t.Fatalf("challenge body %q, Content-Length %q", body, resp.Header.Get("Content-Length"))
	}
}

func TestHSMChallengeVerifiedByAzkeys(t *testing.T) {
	srv := start(t, Config{ManagedHSM: true})
	c := verifyingClient(t, srv, hsmHost)
	kb := createKey(t, c, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr(int32(256))})
	if _, err := c.GetKey(t.Context(), kb.Key.KID.Name(), kb.Key.KID.Version(), nil); err != nil {
		t.Fatalf("get: %v", err)
	}
	// The same client refuses a vault's challenge: the check was on.
	vault := start(t, Config{})
	_, err := verifyingClient(t, vault, hsmHost).CreateKey(t.Context(), "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if err == nil || !strings.Contains(err.Error(), "doesn't match the requested domain") {
		t.Fatalf("vault challenge to a Managed HSM host: %v, want azkeys' resource mismatch", err)
	}
}

func TestHSMKeysAreHSMBacked(t *testing.T) {
	srv := start(t, Config{ManagedHSM: true})
	c := newClient(t, srv)
	for kty, want := range map[azkeys.KeyType]azkeys.KeyType{
		azkeys.KeyTypeRSA: azkeys.KeyTypeRSAHSM, azkeys.KeyTypeEC: azkeys.KeyTypeECHSM, azkeys.KeyTypeOct: azkeys.KeyTypeOctHSM,
		azkeys.KeyTypeRSAHSM: azkeys.KeyTypeRSAHSM, azkeys.KeyTypeECHSM: azkeys.KeyTypeECHSM, azkeys.KeyTypeOctHSM: azkeys.KeyTypeOctHSM,
	} {
		kb := createKey(t, c, "k-"+strings.ToLower(string(kty)), azkeys.CreateKeyParameters{Kty: to.Ptr(kty)})
		if *kb.Key.Kty != want {
			t.Fatalf("create %s answered %s, want %s", kty, *kb.Key.Kty, want)
		}
		if kb.Attributes.HSMPlatform != nil {
			t.Fatalf("create %s: hsmPlatform %q; a Managed HSM writes none", kty, *kb.Attributes.HSMPlatform)
		}
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := ec.PublicKey.Bytes() // 0x04 | X | Y
	if err != nil {
		t.Fatal(err)
	}
	priv, err := ec.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	imp, err := c.ImportKey(t.Context(), "imported", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{
		Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(azkeys.CurveNameP256), X: pub[1:33], Y: pub[33:65], D: priv,
	}}, nil)
	if err != nil || *imp.Key.Kty != azkeys.KeyTypeECHSM {
		t.Fatalf("import EC: %v, %v", err, imp.Key)
	}
	// A vault keeps what was asked for.
	vkb := createKey(t, newClient(t, start(t, Config{})), "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)})
	if *vkb.Key.Kty != azkeys.KeyTypeRSA || vkb.Attributes.HSMPlatform == nil {
		t.Fatalf("vault create RSA: %s, hsmPlatform %v", *vkb.Key.Kty, vkb.Attributes.HSMPlatform)
	}
}

func TestHSMAESKeyWrapRoundTrip(t *testing.T) {
	srv := start(t, Config{ManagedHSM: true})
	c := newClient(t, srv)
	dek := bytes.Repeat([]byte{0x5a}, 32)
	for _, tc := range []struct {
		size int32
		alg  azkeys.EncryptionAlgorithm
	}{{128, azkeys.EncryptionAlgorithmA128KW}, {192, azkeys.EncryptionAlgorithmA192KW}, {256, azkeys.EncryptionAlgorithmA256KW}} {
		name := "kek" + string(tc.alg)
		kb := createKey(t, c, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr(tc.size)})
		if *kb.Key.Kty != azkeys.KeyTypeOctHSM {
			t.Fatalf("kty %s", *kb.Key.Kty)
		}
		w, err := c.WrapKey(t.Context(), name, kb.Key.KID.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(tc.alg), Value: dek}, nil)
		if err != nil || len(w.Result) != len(dek)+8 {
			t.Fatalf("wrap %s: %v, %d bytes", tc.alg, err, len(w.Result))
		}
		u, err := c.UnwrapKey(t.Context(), name, kb.Key.KID.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(tc.alg), Value: w.Result}, nil)
		if err != nil || !bytes.Equal(u.Result, dek) {
			t.Fatalf("unwrap %s: %v", tc.alg, err)
		}
	}
	// A Managed HSM names the algorithm in the result (recorded), a vault does not.
	var got map[string]any
	url := srv.URL() + "/keys/kekA256KW/wrapkey?api-version=7.5"
	if st := rawJSON(t, srv, http.MethodPost, url, `{"alg":"A256KW","value":"`+b64(dek)+`"}`, &got); st != http.StatusOK || got["alg"] != "A256KW" {
		t.Fatalf("raw wrap: %d %v", st, got)
	}
}

func TestHSMGetRandomBytes(t *testing.T) {
	srv := start(t, Config{ManagedHSM: true})
	c := verifyingClient(t, srv, hsmHost)
	r, err := c.GetRandomBytes(t.Context(), azkeys.GetRandomBytesParameters{Count: to.Ptr(int32(32))}, nil)
	if err != nil || len(r.Value) != 32 || bytes.Equal(r.Value, make([]byte, 32)) {
		t.Fatalf("rng: %v, %x", err, r.Value)
	}
}
