package keyvault

import (
	"net/http"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// TestECKeyLifecycle: EC and EC-HSM keys on every curve go through what
// RSA keys go through, with the JWK Key Vault writes (crv, x, y of the
// curve's size, default key_ops sign and verify, no d).
func TestECKeyLifecycle(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	ctx := t.Context()
	for _, tc := range []struct {
		kty  azkeys.KeyType
		crv  azkeys.CurveName
		size int
		hsm  string
	}{
		{azkeys.KeyTypeEC, azkeys.CurveNameP256, 32, "0"}, {azkeys.KeyTypeEC, azkeys.CurveNameP256K, 32, "0"},
		{azkeys.KeyTypeEC, azkeys.CurveNameP384, 48, "0"}, {azkeys.KeyTypeEC, azkeys.CurveNameP521, 66, "0"},
		{azkeys.KeyTypeECHSM, azkeys.CurveNameP256, 32, "2"}, {azkeys.KeyTypeECHSM, azkeys.CurveNameP256K, 32, "2"},
		{azkeys.KeyTypeECHSM, azkeys.CurveNameP384, 48, "2"}, {azkeys.KeyTypeECHSM, azkeys.CurveNameP521, 66, "2"},
	} {
		name := string(tc.kty) + "-" + string(tc.crv)
		t.Run(name, func(t *testing.T) {
			kb := createKey(t, c, name, azkeys.CreateKeyParameters{Kty: ptr(tc.kty), Curve: ptr(tc.crv)})
			checkECKey(t, kb, tc.kty, tc.crv, tc.size, tc.hsm)
			got, err := c.GetKey(ctx, name, kb.Key.KID.Version(), nil)
			if err != nil || string(got.Key.X) != string(kb.Key.X) {
				t.Fatalf("get: %v", err)
			}
			if _, err := c.UpdateKey(ctx, name, "", azkeys.UpdateKeyParameters{Tags: map[string]*string{"a": ptr("b")}}, nil); err != nil {
				t.Fatalf("update: %v", err)
			}
			rot, err := c.RotateKey(ctx, name, nil)
			if err != nil {
				t.Fatalf("rotate: %v", err)
			}
			checkECKey(t, rot.KeyBundle, tc.kty, tc.crv, tc.size, tc.hsm)
			if string(rot.Key.X) == string(kb.Key.X) {
				t.Fatal("rotate kept the key material")
			}
			if n := len(readVersions(t, c, name)); n != 2 {
				t.Fatalf("%d versions after a rotation", n)
			}
			if _, err := c.DeleteKey(ctx, name, nil); err != nil {
				t.Fatal(err)
			}
			rec, err := c.RecoverDeletedKey(ctx, name, nil)
			if err != nil || *rec.Key.KID != *rot.Key.KID {
				t.Fatalf("recover: %v", err)
			}
			if _, err := c.DeleteKey(ctx, name, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := c.PurgeDeletedKey(ctx, name, nil); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func checkECKey(t *testing.T, kb azkeys.KeyBundle, kty azkeys.KeyType, crv azkeys.CurveName, size int, hsm string) {
	t.Helper()
	k := kb.Key
	if *k.Kty != kty || *k.Crv != crv || len(k.X) != size || len(k.Y) != size || k.D != nil || k.N != nil ||
		opsString(k.KeyOps) != "sign verify" || *kb.Attributes.HSMPlatform != hsm {
		t.Fatalf("EC bundle kty %s crv %s x %d y %d ops %q hsmPlatform %s", *k.Kty, *k.Crv, len(k.X), len(k.Y), opsString(k.KeyOps), *kb.Attributes.HSMPlatform)
	}
}

// TestECImportRefusals: the private scalar must be on the curve, and a
// public point sent along must be the one it makes.
func TestECImportRefusals(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	good := func() azkeys.JSONWebKey {
		return azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeEC), Crv: ptr(azkeys.CurveNameP256K), D: make([]byte, 32)}
	}
	zero := good()
	order := good()
	order.D = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
		0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41} // n of secp256k1
	wrongX := good()
	wrongX.D = []byte{1}
	wrongX.X = make([]byte, 32)
	badCurve := good()
	badCurve.Crv = ptr(azkeys.CurveName("P-192"))
	for name, k := range map[string]azkeys.JSONWebKey{"d zero": zero, "d the order": order, "x not of d": wrongX, "unknown curve": badCurve} {
		t.Run(name, func(t *testing.T) {
			_, err := c.ImportKey(t.Context(), "bad", azkeys.ImportKeyParameters{Key: &k}, nil)
			wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
		})
	}
	one := good()
	one.D = []byte{1} // d = 1: the public point is the generator
	kb, err := c.ImportKey(t.Context(), "one", azkeys.ImportKeyParameters{Key: &one}, nil)
	if err != nil || len(kb.Key.X) != 32 || kb.Key.X[0] != 0x79 || kb.Key.X[1] != 0xbe {
		t.Fatalf("import d=1: %v %x", err, kb.Key.X)
	}
}

// TestECKeyOps: an EC key takes sign and verify only, in Key Vault's words.
func TestECKeyOps(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	_, err := c.CreateKey(t.Context(), "ec", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC),
		KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationSign), ptr(azkeys.KeyOperationWrapKey), ptr(azkeys.KeyOperationEncrypt)}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	if msg := errorMessage(t, err); msg != `Unsupported key operation(s): "wrapKey", "encrypt". Supported values are "sign", "verify".` {
		t.Fatalf("message %q", msg)
	}
	createKey(t, c, "ec", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)})
	_, err = c.UpdateKey(t.Context(), "ec", "", azkeys.UpdateKeyParameters{KeyOps: []*azkeys.KeyOperation{ptr(azkeys.KeyOperationDecrypt)}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	_, err = c.WrapKey(t.Context(), "ec", "", azkeys.KeyOperationParameters{Algorithm: oaep256, Value: make([]byte, 32)}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyOperationForbidden")
}

// TestP256KSurvivesRestart: P-256K keys, which PKCS #8 cannot hold, are
// in the state file too, and sign with the same key after a restart.
func TestP256KSurvivesRestart(t *testing.T) {
	cfg := persistedConfig(t.TempDir())
	srv := start(t, cfg)
	c := clientFromCAFile(t, srv.URL(), cfg.CAFile)
	kb := createKey(t, c, "k1", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP256K)})
	restart(t, srv, cfg)
	digest := digestOf(sha256Hash, "after restart")
	s, err := c.Sign(t.Context(), "k1", kb.Key.KID.Version(), signParams(azkeys.SignatureAlgorithmES256K, digest), nil)
	if err != nil {
		t.Fatal(err)
	}
	if !localECVerify(t, kb.Key, digest, bigOf(s.Result[:32]), bigOf(s.Result[32:])) {
		t.Fatal("a restored P-256K key signs with other material")
	}
}
