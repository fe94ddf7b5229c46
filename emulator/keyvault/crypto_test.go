package keyvault

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

func TestRSAWrapUnwrapEncryptDecrypt(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	kb := createKey(t, c, "rsa", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)})
	ver := kb.Key.KID.Version()
	dek := make([]byte, 32)
	_, _ = rand.Read(dek)
	for _, alg := range []azkeys.EncryptionAlgorithm{azkeys.EncryptionAlgorithmRSAOAEP, azkeys.EncryptionAlgorithmRSAOAEP256, azkeys.EncryptionAlgorithmRSA15} {
		w, err := c.WrapKey(t.Context(), "rsa", "", azkeys.KeyOperationParameters{Algorithm: ptr(alg), Value: dek}, nil)
		if err != nil || *w.KID != *kb.Key.KID || len(w.Result) != 256 {
			t.Fatalf("wrap %s: %v", alg, err)
		}
		u, err := c.UnwrapKey(t.Context(), "rsa", ver, azkeys.KeyOperationParameters{Algorithm: ptr(alg), Value: w.Result}, nil)
		if err != nil || !bytes.Equal(u.Result, dek) {
			t.Fatalf("unwrap %s: %v", alg, err)
		}
		e, err := c.Encrypt(t.Context(), "rsa", ver, azkeys.KeyOperationParameters{Algorithm: ptr(alg), Value: []byte("plaintext")}, nil)
		if err != nil {
			t.Fatalf("encrypt %s: %v", alg, err)
		}
		d, err := c.Decrypt(t.Context(), "rsa", "", azkeys.KeyOperationParameters{Algorithm: ptr(alg), Value: e.Result}, nil)
		if err != nil || string(d.Result) != "plaintext" {
			t.Fatalf("decrypt %s: %v", alg, err)
		}
	}
	// A wrap made locally with the public JWK (what cmkd's kek does for
	// RSA) must unwrap remotely.
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(kb.Key.N), E: int(new(big.Int).SetBytes(kb.Key.E).Int64())}
	local, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, dek, nil)
	if err != nil {
		t.Fatal(err)
	}
	u, err := c.UnwrapKey(t.Context(), "rsa", ver, azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: local}, nil)
	if err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap of a local wrap: %v", err)
	}
	_, err = c.UnwrapKey(t.Context(), "rsa", ver, azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: make([]byte, 256)}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	_, err = c.WrapKey(t.Context(), "rsa", ver, azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256KW), Value: dek}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
}

func TestOctWrapAndGCM(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	for _, tc := range []struct {
		size int32
		kw   azkeys.EncryptionAlgorithm
		gcm  azkeys.EncryptionAlgorithm
	}{{128, azkeys.EncryptionAlgorithmA128KW, azkeys.EncryptionAlgorithmA128GCM}, {192, azkeys.EncryptionAlgorithmA192KW, azkeys.EncryptionAlgorithmA192GCM}, {256, azkeys.EncryptionAlgorithmA256KW, azkeys.EncryptionAlgorithmA256GCM}} {
		name := "oct" + string(tc.kw)
		createKey(t, c, name, azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM), KeySize: ptr(tc.size)})
		dek := make([]byte, 32)
		_, _ = rand.Read(dek)
		w, err := c.WrapKey(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: ptr(tc.kw), Value: dek}, nil)
		if err != nil || len(w.Result) != 40 {
			t.Fatalf("wrap %s: %v", tc.kw, err)
		}
		u, err := c.UnwrapKey(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: ptr(tc.kw), Value: w.Result}, nil)
		if err != nil || !bytes.Equal(u.Result, dek) {
			t.Fatalf("unwrap %s: %v", tc.kw, err)
		}
		w.Result[3] ^= 0xff
		_, err = c.UnwrapKey(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: ptr(tc.kw), Value: w.Result}, nil)
		wantErr(t, err, http.StatusBadRequest, "BadParameter", "")

		e, err := c.Encrypt(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: ptr(tc.gcm), Value: []byte("secret"), AdditionalAuthenticatedData: []byte("aad")}, nil)
		if err != nil || len(e.IV) != 12 || len(e.AuthenticationTag) != 16 {
			t.Fatalf("encrypt %s: %v %+v", tc.gcm, err, e)
		}
		d, err := c.Decrypt(t.Context(), name, "", azkeys.KeyOperationParameters{Algorithm: ptr(tc.gcm), Value: e.Result, IV: e.IV,
			AuthenticationTag: e.AuthenticationTag, AdditionalAuthenticatedData: []byte("aad")}, nil)
		if err != nil || string(d.Result) != "secret" {
			t.Fatalf("decrypt %s: %v", tc.gcm, err)
		}
	}
	// Algorithm for another key size or type is refused.
	_, err := c.WrapKey(t.Context(), "octA128KW", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256KW), Value: make([]byte, 32)}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	_, err = c.WrapKey(t.Context(), "octA128KW", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: make([]byte, 32)}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	_, err = c.Encrypt(t.Context(), "octA128KW", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA128CBC), Value: make([]byte, 32)}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
}

func TestKeyStateRefusals(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	srv := start(t, Config{Now: func() time.Time { return now }})
	c := newClient(t, srv)
	wrapOnly := createKey(t, c, "ops", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM),
		KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationWrapKey), ptr(azkeys.KeyOperationUnwrapKey)}})
	_, err := c.Decrypt(t.Context(), "ops", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256GCM), Value: make([]byte, 16)}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyOperationForbidden")

	dek := make([]byte, 32)
	kw := func(string) azkeys.KeyOperationParameters {
		return azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256KW), Value: dek}
	}
	w, err := c.WrapKey(t.Context(), "ops", "", kw("ops"), nil)
	if err != nil {
		t.Fatal(err)
	}
	ver := wrapOnly.Key.KID.Version()
	if _, err := c.UpdateKey(t.Context(), "ops", ver, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.UnwrapKey(t.Context(), "ops", ver, azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256KW), Value: w.Result}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyDisabled")
	_, err = c.WrapKey(t.Context(), "ops", ver, kw("ops"), nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyDisabled")

	// Expired: no new wraps, but existing data still unwraps.
	past := now.Add(-time.Hour)
	if _, err := c.UpdateKey(t.Context(), "ops", ver, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(true), Expires: &past}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.WrapKey(t.Context(), "ops", ver, kw("ops"), nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyExpired")
	if u, err := c.UnwrapKey(t.Context(), "ops", ver, azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256KW), Value: w.Result}, nil); err != nil || !bytes.Equal(u.Result, dek) {
		t.Fatalf("unwrap with an expired key must work: %v", err)
	}

	future := now.Add(time.Hour)
	createKey(t, c, "later", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM), KeyAttributes: &azkeys.KeyAttributes{NotBefore: &future}})
	_, err = c.WrapKey(t.Context(), "later", "", kw("later"), nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyNotYetValid")
}

func TestImportKey(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	priv, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	imp, err := c.ImportKey(t.Context(), "imported", azkeys.ImportKeyParameters{
		HSM: ptr(true),
		Key: &azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeRSA), N: priv.N.Bytes(), E: big.NewInt(int64(priv.E)).Bytes(), D: priv.D.Bytes(),
			P: priv.Primes[0].Bytes(), Q: priv.Primes[1].Bytes(),
			KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationWrapKey), ptr(azkeys.KeyOperationUnwrapKey)}},
	}, nil)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	if *imp.Key.Kty != azkeys.KeyTypeRSAHSM || imp.Key.D != nil || !bytes.Equal(imp.Key.N, priv.N.Bytes()) || opsString(imp.Key.KeyOps) != "wrapKey unwrapKey" {
		t.Fatalf("imported bundle %+v", imp.Key)
	}
	wrapped, _ := rsa.EncryptOAEP(sha256.New(), rand.Reader, &priv.PublicKey, []byte("dek-bytes"), nil)
	u, err := c.UnwrapKey(t.Context(), "imported", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped}, nil)
	if err != nil || string(u.Result) != "dek-bytes" {
		t.Fatalf("unwrap with imported key: %v", err)
	}

	octKey := bytes.Repeat([]byte{7}, 32)
	if _, err := c.ImportKey(t.Context(), "imported-oct", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeOctHSM), K: octKey}}, nil); err != nil {
		t.Fatalf("import oct: %v", err)
	}
	w, err := c.WrapKey(t.Context(), "imported-oct", "", azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256KW), Value: make([]byte, 16)}, nil)
	if want, _ := aesKeyWrap(octKey, make([]byte, 16)); err != nil || !bytes.Equal(w.Result, want) {
		t.Fatalf("wrap with imported oct key: %v", err)
	}
	_, err = c.ImportKey(t.Context(), "public-only", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeRSA), N: priv.N.Bytes(), E: []byte{1, 0, 1}}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
}
