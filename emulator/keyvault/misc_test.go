package keyvault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"math/big"
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

func bigOf(b []byte) *big.Int { return new(big.Int).SetBytes(b) }

func TestGetRandomBytes(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	a, err := c.GetRandomBytes(t.Context(), azkeys.GetRandomBytesParameters{Count: ptr(int32(100))}, nil)
	if err != nil || len(a.Value) != 100 {
		t.Fatalf("rng: %v, %d bytes", err, len(a.Value))
	}
	b, err := c.GetRandomBytes(t.Context(), azkeys.GetRandomBytesParameters{Count: ptr(int32(128))}, nil)
	if err != nil || len(b.Value) != 128 || bytes.Equal(a.Value, b.Value[:100]) {
		t.Fatalf("rng 128: %v", err)
	}
	for _, n := range []int32{0, -1, 129} {
		_, err := c.GetRandomBytes(t.Context(), azkeys.GetRandomBytesParameters{Count: ptr(n)}, nil)
		wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	}
	if got := srv.Calls()["getRandomBytes"]; got != 5 {
		t.Fatalf("getRandomBytes counted %d", got)
	}
}

// TestRelease: no key of the emulator is exportable, so release answers a
// clear 400; keys asking for secure key release are refused at creation
// with Key Vault's messages.
func TestRelease(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	kb := createKey(t, c, "r", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSAHSM)})
	_, err := c.Release(t.Context(), "r", "", azkeys.ReleaseParameters{TargetAttestationToken: ptr("token")}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	if msg := errorMessage(t, err); msg != "Key "+string(*kb.Key.KID)+" is not exportable and has no release policy: only an exportable key with a release policy can be released." {
		t.Fatalf("message %q", msg)
	}
	_, err = c.Release(t.Context(), "r", kb.Key.KID.Version(), azkeys.ReleaseParameters{}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	_, err = c.Release(t.Context(), "missing", "", azkeys.ReleaseParameters{TargetAttestationToken: ptr("token")}, nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")

	policy := &azkeys.KeyReleasePolicy{EncodedPolicy: []byte(`{"version":"1.0.0","anyOf":[]}`)}
	for _, tc := range []struct {
		name string
		p    azkeys.CreateKeyParameters
		msg  string
	}{
		{"exportable without policy", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSAHSM), KeyAttributes: &azkeys.KeyAttributes{Exportable: ptr(true)}},
			"AKV.SKR.1004: Exportable keys must have release policy."},
		{"policy without exportable", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSAHSM), ReleasePolicy: policy},
			"AKV.SKR.1005: Non-exportable keys must not have release policy."},
		{"both", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeECHSM), Curve: ptr(azkeys.CurveNameP256K), KeyAttributes: &azkeys.KeyAttributes{Exportable: ptr(true)}, ReleasePolicy: policy},
			"Exportable keys (secure key release) are not supported by this emulator."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.CreateKey(t.Context(), "skr", tc.p, nil)
			wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
			if msg := errorMessage(t, err); msg != tc.msg {
				t.Fatalf("message %q", msg)
			}
		})
	}
}

// TestAESCBC: A*CBC and A*CBCPAD are real AES-CBC under the key (checked
// against crypto/cipher with an imported key), with the parameters azkeys
// sends: the caller's 16-byte IV, echoed by encrypt.
func TestAESCBC(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	iv := []byte("0123456789ABCDEF")
	for _, size := range []int{16, 24, 32} {
		k := bytes.Repeat([]byte{byte(size)}, size)
		name := "cbc" + aesAlg(size, "")
		imp, err := c.ImportKey(t.Context(), name, azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeOct), K: k}}, nil)
		if err != nil || *imp.Key.Kty != azkeys.KeyTypeOctHSM {
			t.Fatalf("import oct: %v (an oct key is stored as oct-HSM)", err)
		}
		block, _ := aes.NewCipher(k)
		pad := azkeys.EncryptionAlgorithm(aesAlg(size, "CBCPAD"))
		e, err := c.Encrypt(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: &pad, IV: iv, Value: []byte("plaintext")}, nil)
		if err != nil || len(e.Result) != 16 || !bytes.Equal(e.IV, iv) {
			t.Fatalf("%s encrypt: %v", pad, err)
		}
		want := make([]byte, 16)
		cipher.NewCBCEncrypter(block, iv).CryptBlocks(want, append([]byte("plaintext"), bytes.Repeat([]byte{7}, 7)...))
		if !bytes.Equal(e.Result, want) {
			t.Fatalf("%s is not AES-CBC with PKCS#7 padding", pad)
		}
		d, err := c.Decrypt(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: &pad, IV: iv, Value: e.Result}, nil)
		if err != nil || string(d.Result) != "plaintext" {
			t.Fatalf("%s decrypt: %v", pad, err)
		}
		_, err = c.Decrypt(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: &pad, IV: iv, Value: tampered(e.Result)}, nil)
		wantErr(t, err, http.StatusBadRequest, "BadParameter", "") // the padding no longer checks

		plain := azkeys.EncryptionAlgorithm(aesAlg(size, "CBC"))
		blocks := bytes.Repeat([]byte("sixteen bytes..."), 2)
		e, err = c.Encrypt(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: &plain, IV: iv, Value: blocks}, nil)
		if err != nil || len(e.Result) != 32 {
			t.Fatalf("%s encrypt: %v", plain, err)
		}
		d, err = c.Decrypt(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: &plain, IV: iv, Value: e.Result}, nil)
		if err != nil || !bytes.Equal(d.Result, blocks) {
			t.Fatalf("%s decrypt: %v", plain, err)
		}
		_, err = c.Encrypt(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: &plain, IV: iv, Value: []byte("plaintext")}, nil)
		wantErr(t, err, http.StatusBadRequest, "BadParameter", "") // not whole blocks
		_, err = c.Encrypt(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: &pad, Value: []byte("no iv")}, nil)
		wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	}
	// The algorithm names the key size.
	_, err := c.Encrypt(t.Context(), "cbcA128", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256CBCPAD), IV: iv, Value: []byte("x")}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	createKey(t, c, "rsa", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)})
	_, err = c.Encrypt(t.Context(), "rsa", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256CBCPAD), IV: iv, Value: []byte("x")}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
}
