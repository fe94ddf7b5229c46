package keyvault

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"math/big"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

const sha256Hash = crypto.SHA256

// digestOf hashes msg as the caller of Sign must: Key Vault signs digests.
func digestOf(h crypto.Hash, msg string) []byte {
	w := h.New()
	w.Write([]byte(msg))
	return w.Sum(nil)
}

func rsaPublic(k *azkeys.JSONWebKey) *rsa.PublicKey {
	return &rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())}
}

func signParams(alg azkeys.SignatureAlgorithm, digest []byte) azkeys.SignParameters {
	return azkeys.SignParameters{Algorithm: ptr(alg), Value: digest}
}

func verifyParams(alg azkeys.SignatureAlgorithm, digest, sig []byte) azkeys.VerifyParameters {
	return azkeys.VerifyParameters{Algorithm: ptr(alg), Digest: digest, Signature: sig}
}

// TestSignVerifyRSA: signatures of the emulator verify with crypto/rsa, and
// signatures of crypto/rsa verify through the emulator, for every RS* and
// PS* algorithm; PS* salts are as long as the hash (RFC 7518).
func TestSignVerifyRSA(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	local, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	kb := createKey(t, c, "rsa-sign", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)})
	imp := importRSAKey(t, c, "rsa-imported", local)
	pub := rsaPublic(kb.Key)
	pss := &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}
	for _, tc := range []struct {
		alg  azkeys.SignatureAlgorithm
		hash crypto.Hash
		pss  bool
	}{
		{azkeys.SignatureAlgorithmRS256, crypto.SHA256, false}, {azkeys.SignatureAlgorithmRS384, crypto.SHA384, false},
		{azkeys.SignatureAlgorithmRS512, crypto.SHA512, false}, {azkeys.SignatureAlgorithmPS256, crypto.SHA256, true},
		{azkeys.SignatureAlgorithmPS384, crypto.SHA384, true}, {azkeys.SignatureAlgorithmPS512, crypto.SHA512, true},
	} {
		t.Run(string(tc.alg), func(t *testing.T) {
			digest := digestOf(tc.hash, "message for "+string(tc.alg))
			s, err := c.Sign(t.Context(), "rsa-sign", "", signParams(tc.alg, digest), nil)
			if err != nil {
				t.Fatalf("sign: %v", err)
			}
			if *s.KID != *kb.Key.KID || len(s.Result) != 256 {
				t.Fatalf("sign result kid %s, %d bytes", *s.KID, len(s.Result))
			}
			if tc.pss {
				err = rsa.VerifyPSS(pub, tc.hash, digest, s.Result, pss)
			} else {
				err = rsa.VerifyPKCS1v15(pub, tc.hash, digest, s.Result)
			}
			if err != nil {
				t.Fatalf("crypto/rsa rejects the emulator's signature: %v", err)
			}
			wantVerify(t, c, "rsa-sign", tc.alg, digest, s.Result, true)
			wantVerify(t, c, "rsa-sign", tc.alg, tampered(digest), s.Result, false)

			var mine []byte
			if tc.pss {
				mine, err = rsa.SignPSS(rand.Reader, local, tc.hash, digest, pss)
			} else {
				mine, err = rsa.SignPKCS1v15(nil, local, tc.hash, digest)
			}
			if err != nil {
				t.Fatal(err)
			}
			wantVerify(t, c, imp.Key.KID.Name(), tc.alg, digest, mine, true)
			wantVerify(t, c, imp.Key.KID.Name(), tc.alg, tampered(digest), mine, false)
		})
	}
}

// TestSignVerifyEC does the same for every curve: signatures are r||s of
// the curve's size, not ASN.1, and verify with crypto/ecdsa (P-256K with
// decred's secp256k1).
func TestSignVerifyEC(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	for _, tc := range []struct {
		crv  azkeys.CurveName
		alg  azkeys.SignatureAlgorithm
		hash crypto.Hash
		size int
	}{
		{azkeys.CurveNameP256, azkeys.SignatureAlgorithmES256, crypto.SHA256, 32},
		{azkeys.CurveNameP256K, azkeys.SignatureAlgorithmES256K, crypto.SHA256, 32},
		{azkeys.CurveNameP384, azkeys.SignatureAlgorithmES384, crypto.SHA384, 48},
		{azkeys.CurveNameP521, azkeys.SignatureAlgorithmES512, crypto.SHA512, 66},
	} {
		t.Run(string(tc.alg), func(t *testing.T) {
			name := "ec-" + string(tc.alg)
			kb := createKey(t, c, name, azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeECHSM), Curve: ptr(tc.crv)})
			digest := digestOf(tc.hash, "message for "+string(tc.alg))
			s, err := c.Sign(t.Context(), name, kb.Key.KID.Version(), signParams(tc.alg, digest), nil)
			if err != nil {
				t.Fatalf("sign: %v", err)
			}
			if len(s.Result) != 2*tc.size {
				t.Fatalf("signature of %d bytes, want r||s of %d", len(s.Result), 2*tc.size)
			}
			r, sv := new(big.Int).SetBytes(s.Result[:tc.size]), new(big.Int).SetBytes(s.Result[tc.size:])
			if !localECVerify(t, kb.Key, digest, r, sv) {
				t.Fatal("the emulator's signature does not verify locally")
			}
			wantVerify(t, c, name, tc.alg, digest, s.Result, true)
			wantVerify(t, c, name, tc.alg, tampered(digest), s.Result, false)
			wantVerify(t, c, name, tc.alg, digest, tampered(s.Result), false)

			imported, mine := importAndSignLocally(t, c, tc.crv, digest, tc.size)
			wantVerify(t, c, imported, tc.alg, digest, mine, true)
			wantVerify(t, c, imported, tc.alg, tampered(digest), mine, false)
		})
	}
}

func localECVerify(t *testing.T, k *azkeys.JSONWebKey, digest []byte, r, s *big.Int) bool {
	t.Helper()
	raw := append(append([]byte{4}, k.X...), k.Y...)
	if *k.Crv == azkeys.CurveNameP256K {
		pub, err := secp256k1.ParsePubKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		var rs, ss secp256k1.ModNScalar
		rs.SetByteSlice(r.FillBytes(make([]byte, 32)))
		ss.SetByteSlice(s.FillBytes(make([]byte, 32)))
		return k1ecdsa.NewSignature(&rs, &ss).Verify(digest, pub)
	}
	curve := map[azkeys.CurveName]elliptic.Curve{azkeys.CurveNameP256: elliptic.P256(), azkeys.CurveNameP384: elliptic.P384(), azkeys.CurveNameP521: elliptic.P521()}[*k.Crv]
	pub, err := ecdsa.ParseUncompressedPublicKey(curve, raw)
	if err != nil {
		t.Fatal(err)
	}
	return ecdsa.Verify(pub, digest, r, s)
}

// importAndSignLocally imports a key made here and signs digest with it
// here, as r||s.
func importAndSignLocally(t *testing.T, c *azkeys.Client, crv azkeys.CurveName, digest []byte, size int) (string, []byte) {
	t.Helper()
	name := "imported-" + string(crv)
	sig := make([]byte, 2*size)
	var jwk azkeys.JSONWebKey
	if crv == azkeys.CurveNameP256K {
		k, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			t.Fatal(err)
		}
		raw := k.PubKey().SerializeUncompressed()
		jwk = azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeEC), Crv: ptr(crv), D: k.Serialize(), X: raw[1:33], Y: raw[33:]}
		s := k1ecdsa.Sign(k, digest)
		r, ss := s.R(), s.S()
		r.PutBytesUnchecked(sig[:32])
		ss.PutBytesUnchecked(sig[32:])
	} else {
		curve := map[azkeys.CurveName]elliptic.Curve{azkeys.CurveNameP256: elliptic.P256(), azkeys.CurveNameP384: elliptic.P384(), azkeys.CurveNameP521: elliptic.P521()}[crv]
		k, err := ecdsa.GenerateKey(curve, rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		d, _ := k.Bytes()
		raw, _ := k.PublicKey.Bytes()
		jwk = azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeEC), Crv: ptr(crv), D: d, X: raw[1 : 1+size], Y: raw[1+size:]}
		r, s, err := ecdsa.Sign(rand.Reader, k, digest)
		if err != nil {
			t.Fatal(err)
		}
		r.FillBytes(sig[:size])
		s.FillBytes(sig[size:])
	}
	kb, err := c.ImportKey(t.Context(), name, azkeys.ImportKeyParameters{Key: &jwk}, nil)
	if err != nil {
		t.Fatalf("import %s: %v", crv, err)
	}
	if string(kb.Key.X) != string(jwk.X) || kb.Key.D != nil || opsString(kb.Key.KeyOps) != "sign verify" {
		t.Fatalf("imported %+v", kb.Key)
	}
	return name, sig
}

func importRSAKey(t *testing.T, c *azkeys.Client, name string, k *rsa.PrivateKey) azkeys.KeyBundle {
	t.Helper()
	resp, err := c.ImportKey(t.Context(), name, azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{
		Kty: ptr(azkeys.KeyTypeRSA), N: k.N.Bytes(), E: big.NewInt(int64(k.E)).Bytes(), D: k.D.Bytes(),
		P: k.Primes[0].Bytes(), Q: k.Primes[1].Bytes(),
	}}, nil)
	if err != nil {
		t.Fatalf("import: %v", err)
	}
	return resp.KeyBundle
}

func wantVerify(t *testing.T, c *azkeys.Client, name string, alg azkeys.SignatureAlgorithm, digest, sig []byte, want bool) {
	t.Helper()
	v, err := c.Verify(t.Context(), name, "", verifyParams(alg, digest, sig), nil)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if *v.Value != want {
		t.Fatalf("verify %s answered %v, want %v", alg, *v.Value, want)
	}
}

func tampered(b []byte) []byte {
	out := append([]byte(nil), b...)
	out[len(out)/2] ^= 0x01
	return out
}

// TestSignRefusals: what Key Vault refuses before it signs.
func TestSignRefusals(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	srv := start(t, Config{Now: func() time.Time { return now }})
	c := newClient(t, srv)
	rsaKey := createKey(t, c, "rsa", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA)})
	ecKey := createKey(t, c, "ec", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP256)})
	createKey(t, c, "aes", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM)})
	d256 := digestOf(crypto.SHA256, "m")

	for _, tc := range []struct {
		name, key string
		alg       azkeys.SignatureAlgorithm
		digest    []byte
		msg       string
	}{
		{"EC algorithm on an RSA key", "rsa", azkeys.SignatureAlgorithmES256, d256,
			"Key and signing algorithm are incompatible. Key " + string(*rsaKey.Key.KID) + " is of type 'RSA', and algorithm 'ES256' can only be used with key type 'EC'."},
		{"RSA algorithm on an EC key", "ec", azkeys.SignatureAlgorithmPS256, d256,
			"Key and signing algorithm are incompatible. Key " + string(*ecKey.Key.KID) + " is of type 'EC', and algorithm 'PS256' can only be used with key type 'RSA'."},
		{"algorithm of another curve", "ec", azkeys.SignatureAlgorithmES384, digestOf(crypto.SHA384, "m"),
			"Key and signing algorithm are incompatible. Key " + string(*ecKey.Key.KID) + " uses curve 'P-256', and algorithm 'ES384' can only be used with curve 'P-384'."},
		{"digest of another hash", "rsa", azkeys.SignatureAlgorithmRS512, d256,
			"Invalid length of 'value': 32 bytes. RS512 requires 64 bytes, encoded with base64url."},
		{"HMAC", "aes", azkeys.SignatureAlgorithmHS256, d256, "Algorithm HS256 is not supported by this emulator."},
		{"unknown algorithm", "rsa", azkeys.SignatureAlgorithm("RS1"), d256, "The value of parameter alg (RS1) is invalid."},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Sign(t.Context(), tc.key, "", signParams(tc.alg, tc.digest), nil)
			wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
			if msg := errorMessage(t, err); msg != tc.msg {
				t.Fatalf("message %q\nwant    %q", msg, tc.msg)
			}
		})
	}
	_, err := c.Verify(t.Context(), "ec", "", verifyParams(azkeys.SignatureAlgorithmES256, d256[:20], make([]byte, 64)), nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	if msg := errorMessage(t, err); msg != "Invalid length of 'digest': 20 bytes. ES256 requires 32 bytes, encoded with base64url." {
		t.Fatalf("verify message %q", msg)
	}

	// key_ops, enabled and exp apply as to the other operations.
	createKey(t, c, "verify-only", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationVerify)}})
	_, err = c.Sign(t.Context(), "verify-only", "", signParams(azkeys.SignatureAlgorithmES256, d256), nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyOperationForbidden")
	s, err := c.Sign(t.Context(), "ec", "", signParams(azkeys.SignatureAlgorithmES256, d256), nil)
	if err != nil {
		t.Fatal(err)
	}
	past := now.Add(-time.Hour)
	if _, err := c.UpdateKey(t.Context(), "ec", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Expires: &past}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sign(t.Context(), "ec", "", signParams(azkeys.SignatureAlgorithmES256, d256), nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyExpired")
	wantVerify(t, c, "ec", azkeys.SignatureAlgorithmES256, d256, s.Result, true) // verify survives expiry
	if _, err := c.UpdateKey(t.Context(), "ec", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err = c.Sign(t.Context(), "ec", "", signParams(azkeys.SignatureAlgorithmES256, d256), nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyDisabled")
	_, err = c.Sign(t.Context(), "missing", "", signParams(azkeys.SignatureAlgorithmES256, d256), nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
}

// errorMessage is the message of a Key Vault error answer.
func errorMessage(t *testing.T, err error) string {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want a ResponseError, got %v", err)
	}
	b, perr := runtime.Payload(re.RawResponse) // cached by azcore, readable again
	var body struct {
		Error struct{ Message string } `json:"error"`
	}
	if perr != nil || json.Unmarshal(b, &body) != nil {
		t.Fatalf("error body %q: %v", b, perr)
	}
	return body.Error.Message
}
