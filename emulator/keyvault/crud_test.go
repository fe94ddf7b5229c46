package keyvault

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

func TestCreateGetUpdate(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	exp, nbf := time.Unix(2524611661, 0), time.Unix(2208992461, 0)
	kb := createKey(t, c, "crud-rsa", azkeys.CreateKeyParameters{
		Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr(int32(2048)), PublicExponent: ptr(int32(65537)),
		KeyAttributes: &azkeys.KeyAttributes{Expires: &exp, NotBefore: &nbf},
		Tags:          map[string]*string{"key": ptr("value")},
	})
	kid := string(*kb.Key.KID)
	if !strings.HasPrefix(kid, srv.URL()+"/keys/crud-rsa/") || len(kb.Key.KID.Version()) != 32 {
		t.Fatalf("kid %s", kid)
	}
	if len(kb.Key.N) != 256 || string(kb.Key.E) != "\x01\x00\x01" || kb.Key.D != nil {
		t.Fatalf("want public 2048-bit JWK only, got n=%d e=%x d=%v", len(kb.Key.N), kb.Key.E, kb.Key.D)
	}
	a := kb.Attributes
	if !*a.Enabled || !a.Expires.Equal(exp) || !a.NotBefore.Equal(nbf) || *a.RecoveryLevel != "CustomizedRecoverable+Purgeable" ||
		*a.RecoverableDays != 7 || *a.Exportable || *a.HSMPlatform != "0" {
		t.Fatalf("attributes %+v", a)
	}
	wantOps := "encrypt decrypt sign verify wrapKey unwrapKey"
	if got := opsString(kb.Key.KeyOps); got != wantOps {
		t.Fatalf("default ops %q", got)
	}

	latest, err := c.GetKey(t.Context(), "crud-rsa", "", nil)
	if err != nil || *latest.Key.KID != *kb.Key.KID || *latest.Tags["key"] != "value" {
		t.Fatalf("get latest: %v %+v", err, latest)
	}
	byVersion, err := c.GetKey(t.Context(), "CRUD-RSA", kb.Key.KID.Version(), nil)
	if err != nil || *byVersion.Key.KID != *kb.Key.KID {
		t.Fatalf("get by version (names are case-insensitive): %v", err)
	}

	upd, err := c.UpdateKey(t.Context(), "crud-rsa", kb.Key.KID.Version(), azkeys.UpdateKeyParameters{
		KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(false)},
		KeyOps:        []*azkeys.KeyOperation{ptr(azkeys.KeyOperationWrapKey), ptr(azkeys.KeyOperationUnwrapKey)},
		Tags:          map[string]*string{"k2": ptr("v2")},
	}, nil)
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if *upd.Attributes.Enabled || opsString(upd.Key.KeyOps) != "wrapKey unwrapKey" || *upd.Tags["k2"] != "v2" || !upd.Attributes.Expires.Equal(exp) {
		t.Fatalf("update result %+v", upd)
	}
	disabled, err := c.GetKey(t.Context(), "crud-rsa", "", nil)
	if err != nil || *disabled.Attributes.Enabled {
		t.Fatalf("GET of a disabled key must answer 200 enabled=false: %v", err)
	}
	// Versionless update targets the latest version.
	if _, err := c.UpdateKey(t.Context(), "crud-rsa", "", azkeys.UpdateKeyParameters{
		KeyAttributes: &azkeys.KeyAttributes{Enabled: ptr(true)}}, nil); err != nil {
		t.Fatalf("versionless update: %v", err)
	}
	again, _ := c.GetKey(t.Context(), "crud-rsa", kb.Key.KID.Version(), nil)
	if !*again.Attributes.Enabled {
		t.Fatal("versionless update did not reach the latest version")
	}
}

func TestCreateKeyTypes(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	cases := []struct {
		name   string
		p      azkeys.CreateKeyParameters
		hsm    string
		verify func(azkeys.JSONWebKey) bool
	}{
		{"rsa-hsm", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSAHSM)}, "2", func(k azkeys.JSONWebKey) bool { return len(k.N) == 256 }},
		{"rsa-3072", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr(int32(3072))}, "0", func(k azkeys.JSONWebKey) bool { return len(k.N) == 384 }},
		{"ec", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, "0", func(k azkeys.JSONWebKey) bool {
			return *k.Crv == azkeys.CurveNameP256 && len(k.X) == 32 && len(k.Y) == 32 && opsString(k.KeyOps) == "sign verify"
		}},
		{"ec-hsm", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeECHSM), Curve: ptr(azkeys.CurveNameP256)}, "2", func(k azkeys.JSONWebKey) bool { return len(k.X) == 32 }},
		{"oct-256", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM), KeySize: ptr(int32(256))}, "2", func(k azkeys.JSONWebKey) bool { return k.K == nil }},
		{"oct-128", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM), KeySize: ptr(int32(128))}, "2", func(k azkeys.JSONWebKey) bool { return k.K == nil }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			kb := createKey(t, c, tc.name, tc.p)
			if *kb.Key.Kty != *tc.p.Kty || *kb.Attributes.HSMPlatform != tc.hsm || !tc.verify(*kb.Key) {
				t.Fatalf("bundle %+v attrs %+v", kb.Key, kb.Attributes)
			}
		})
	}
}

func TestCreateRejectsBadParameters(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	for name, p := range map[string]azkeys.CreateKeyParameters{
		"rsa-1024": {Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr(int32(1024))},
		"oct-512":  {Kty: ptr(azkeys.KeyTypeOctHSM), KeySize: ptr(int32(512))},
		"bad-kty":  {Kty: ptr(azkeys.KeyType("DSA"))},
		"bad-crv":  {Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveName("P-192"))},
	} {
		_, err := c.CreateKey(t.Context(), name, p, nil)
		wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	}
}

func TestMissingKeyAnswersKeyNotFound(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	_, err := c.GetKey(t.Context(), "nope", "", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
	createKey(t, c, "present", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)})
	_, err = c.GetKey(t.Context(), "present", "0123456789abcdef0123456789abcdef", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
	_, err = c.UpdateKey(t.Context(), "nope", "", azkeys.UpdateKeyParameters{Tags: map[string]*string{}}, nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
	_, err = c.RotateKey(t.Context(), "keynonexistent", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
}

func opsString(ops []*azkeys.KeyOperation) string {
	s := make([]string, len(ops))
	for i, o := range ops {
		s[i] = string(*o)
	}
	return strings.Join(s, " ")
}
