package kek

import (
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
)

// The emulator's vaults answer recoveryLevel "CustomizedRecoverable+Purgeable"
// unless purge protection is set.
const emulatorRecoveryLevel = "CustomizedRecoverable+Purgeable"

// roundTripDEK is the round trip's bytes in these tests, so that messages
// can be searched for them.
var roundTripDEK = bytes.Repeat([]byte{0xA5, 0x3C}, roundTripBytes/2)

func testOptions(allowPurgeable bool) OnboardOptions {
	return OnboardOptions{AllowPurgeable: allowPurgeable, rand: bytes.NewReader(roundTripDEK)}
}

// hsmEnv is an env whose emulator answers as a Managed HSM and is listed
// in Config.ManagedHSMs, which can only be done once it runs.
func hsmEnv(t *testing.T) *env {
	t.Helper()
	e := newEnvWith(t, keyvault.Config{ThrottleLimit: -1, ManagedHSM: true}, nil)
	cfg := e.kek.cfg
	cfg.ManagedHSMs = []string{e.srv.URL()}
	cfg.Registerer = nil
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.kek = c
	return e
}

func (e *env) createWith(t *testing.T, name string, p azkeys.CreateKeyParameters) cmkd.KeyID {
	t.Helper()
	resp, err := e.admin.CreateKey(t.Context(), name, p, nil)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return e.id(t, string(*resp.Key.KID))
}

func rsaParams(kty azkeys.KeyType, bits int32, o ...azkeys.KeyOperation) azkeys.CreateKeyParameters {
	if o == nil {
		o = wrapOps
	}
	return azkeys.CreateKeyParameters{Kty: &kty, KeySize: &bits, KeyOps: ops(o...)}
}

// refusal checks that err is an *OnboardError with code, a problem and a
// fix, that it matches ErrNotOnboardable, and that no message shows the
// round trip's bytes.
func refusal(t *testing.T, err error, code string) *OnboardError {
	t.Helper()
	var oe *OnboardError
	if !errors.As(err, &oe) {
		t.Fatalf("err = %v, want an *OnboardError %s", err, code)
	}
	if oe.Code != code {
		t.Fatalf("code = %s (%v), want %s", oe.Code, err, code)
	}
	if oe.Problem == "" || oe.Fix == "" {
		t.Fatalf("refusal without problem or fix: %+v", oe)
	}
	if code != CodeVaultUnreachable && !errors.Is(err, ErrNotOnboardable) {
		t.Fatalf("%v does not match ErrNotOnboardable", err)
	}
	noKeyMaterial(t, err.Error(), roundTripDEK)
	return oe
}

// noKeyMaterial fails when msg shows secret in any usual encoding.
func noKeyMaterial(t *testing.T, msg string, secret []byte) {
	t.Helper()
	if len(secret) < 8 {
		return
	}
	for _, enc := range []string{
		hex.EncodeToString(secret), strings.ToUpper(hex.EncodeToString(secret)),
		base64.StdEncoding.EncodeToString(secret), base64.RawURLEncoding.EncodeToString(secret),
		string(secret),
	} {
		if strings.Contains(msg, enc[:len(enc)/2]) {
			t.Fatalf("message shows key material: %s", msg)
		}
	}
}

func TestOnboardAcceptsRSA(t *testing.T) {
	e := newEnv(t, nil)
	for _, tt := range []struct {
		kty  azkeys.KeyType
		bits int32
	}{{azkeys.KeyTypeRSA, 2048}, {azkeys.KeyTypeRSA, 3072}, {azkeys.KeyTypeRSA, 4096}, {azkeys.KeyTypeRSAHSM, 2048}} {
		name := fmt.Sprintf("%s-%d", strings.ToLower(string(tt.kty)), tt.bits)
		id := e.createWith(t, name, rsaParams(tt.kty, tt.bits))
		e.srv.ResetCalls()
		got, err := e.kek.Onboard(t.Context(), e.url(name), testOptions(true))
		if err != nil {
			t.Fatalf("%s %d: %v", tt.kty, tt.bits, err)
		}
		if got.Key != id || got.Kty != string(tt.kty) || got.KeySize != int(tt.bits) || got.WrapAlg != algRSAOAEP256 || got.ManagedHSM {
			t.Fatalf("onboarding = %+v, want %s, %s %d, RSA-OAEP-256", got, id, tt.kty, tt.bits)
		}
		if got.RecoveryLevel != emulatorRecoveryLevel || len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "purge protection is off") {
			t.Fatalf("purgeable vault accepted without its warning: %+v", got)
		}
		// One GET, the local wrap, one unwrap: the check reads the key once.
		if c := e.srv.Calls(); c["getKey"] != 1 || c["unwrapKey"] != 1 || c["wrapKey"] != 0 {
			t.Fatalf("calls %v, want one getKey and one unwrapKey", c)
		}
	}
}

func TestOnboardRefusesPurgeableVault(t *testing.T) {
	e := newEnv(t, nil)
	e.create(t, "tenant", azkeys.KeyTypeRSA)
	e.srv.ResetCalls()
	got, err := e.kek.Onboard(t.Context(), e.url("tenant"), testOptions(false))
	oe := refusal(t, err, CodePurgeProtection)
	if !strings.Contains(oe.Problem, emulatorRecoveryLevel) || oe.Fix != "az keyvault update --name <vault-name> --enable-purge-protection true" {
		t.Fatalf("refusal = %+v", oe)
	}
	if got.RecoveryLevel != emulatorRecoveryLevel || got.KeySize != 2048 {
		t.Fatalf("what was read is not returned with the refusal: %+v", got)
	}
	if e.srv.Calls()["unwrapKey"] != 0 {
		t.Fatalf("round trip made for a refused key: %v", e.srv.Calls())
	}
}

func TestOnboardAcceptsPurgeProtectedVault(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(t, "tenant", azkeys.KeyTypeRSA)
	for _, tt := range []struct {
		protect bool
		days    int
		level   string
	}{
		{true, 0, "Recoverable"},
		{true, 30, "CustomizedRecoverable"},
		{false, 90, "Recoverable+Purgeable"},
	} {
		if err := e.srv.SetSoftDelete(tt.protect, tt.days); err != nil {
			t.Fatal(err)
		}
		got, err := e.kek.Onboard(t.Context(), e.url("tenant"), testOptions(false))
		if !tt.protect {
			if oe := refusal(t, err, CodePurgeProtection); !strings.Contains(oe.Problem, tt.level) {
				t.Fatalf("refusal = %+v", oe)
			}
			continue
		}
		if err != nil {
			t.Fatalf("purge-protected vault (%s): %v", tt.level, err)
		}
		if got.Key != id || got.RecoveryLevel != tt.level || len(got.Warnings) != 0 {
			t.Fatalf("onboarding = %+v, want %s without warnings", got, tt.level)
		}
	}
}

func TestOnboardRefusesKeyType(t *testing.T) {
	e := newEnv(t, nil)
	// An EC key that is disabled as well: the key type is the refusal that
	// helps, as no attribute change makes an EC key wrap.
	ec := e.createWith(t, "ec", azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256),
		KeyOps: ops(azkeys.KeyOperationSign, azkeys.KeyOperationVerify),
	})
	e.update(t, ec, azkeys.KeyAttributes{Enabled: ptr(false)})
	_, err := e.kek.Onboard(t.Context(), ec, testOptions(true))
	oe := refusal(t, refusalOf(err), CodeKeyType)
	if !strings.Contains(oe.Problem, "EC") || !strings.Contains(oe.Fix, "--kty RSA --size 3072 --ops wrapKey unwrapKey") {
		t.Fatalf("refusal = %+v", oe)
	}

	// oct-HSM outside a Managed HSM.
	oct := e.create(t, "aes", azkeys.KeyTypeOctHSM)
	oe = refusal(t, refusalOf(e.kek.Onboard(t.Context(), oct, testOptions(true))), CodeKeyType)
	if !strings.Contains(oe.Problem, "Managed HSM") {
		t.Fatalf("refusal = %+v", oe)
	}
}

// refusalOf drops an Onboarding so that calls fit in one line.
func refusalOf(args ...any) error {
	if err, ok := args[len(args)-1].(error); ok {
		return err
	}
	return nil
}

func TestOnboardRefusesKeyOps(t *testing.T) {
	e := newEnv(t, nil)
	id := e.createWith(t, "wrap-only", rsaParams(azkeys.KeyTypeRSA, 2048, azkeys.KeyOperationWrapKey, azkeys.KeyOperationEncrypt))
	e.srv.ResetCalls()
	oe := refusal(t, refusalOf(e.kek.Onboard(t.Context(), id, testOptions(true))), CodeKeyOps)
	want := "az keyvault key set-attributes --vault-name <vault-name> --name wrap-only --version " + id.Version + " --ops wrapKey encrypt unwrapKey"
	if oe.Fix != want || !strings.Contains(oe.Problem, "unwrapKey") || !errors.Is(oe, ErrOperationForbidden) {
		t.Fatalf("refusal = %+v, want fix %q", oe, want)
	}
	if c := e.srv.Calls(); c["wrapKey"] != 0 || c["unwrapKey"] != 0 {
		t.Fatalf("calls %v: the static check should refuse before the round trip", c)
	}
}

func TestOnboardRefusesAttributes(t *testing.T) {
	e := newEnv(t, nil)
	off := e.create(t, "off", azkeys.KeyTypeRSA)
	e.update(t, off, azkeys.KeyAttributes{Enabled: ptr(false)})
	oe := refusal(t, refusalOf(e.kek.Onboard(t.Context(), e.url("off"), testOptions(true))), CodeKeyDisabled)
	if !strings.HasSuffix(oe.Fix, "--version "+off.Version+" --enabled true") || oe.Key != off || !errors.Is(oe, ErrDisabled) {
		t.Fatalf("refusal = %+v", oe)
	}

	old := e.create(t, "old", azkeys.KeyTypeRSA)
	e.update(t, old, azkeys.KeyAttributes{Expires: ptr(time.Now().Add(-time.Minute))})
	oe = refusal(t, refusalOf(e.kek.Onboard(t.Context(), old, testOptions(true))), CodeKeyExpired)
	if !strings.Contains(oe.Fix, "az keyvault key rotate --vault-name <vault-name> --name old") || !strings.Contains(oe.Fix, "--expires") {
		t.Fatalf("refusal = %+v", oe)
	}

	early := e.create(t, "early", azkeys.KeyTypeRSA)
	e.update(t, early, azkeys.KeyAttributes{NotBefore: ptr(time.Now().Add(time.Hour))})
	oe = refusal(t, refusalOf(e.kek.Onboard(t.Context(), early, testOptions(true))), CodeKeyNotYetValid)
	if !strings.Contains(oe.Fix, "--not-before") {
		t.Fatalf("refusal = %+v", oe)
	}

	soon := e.create(t, "soon", azkeys.KeyTypeRSA)
	e.update(t, soon, azkeys.KeyAttributes{Expires: ptr(time.Now().Add(24 * time.Hour))})
	got, err := e.kek.Onboard(t.Context(), soon, testOptions(true))
	if err != nil || len(got.Warnings) != 2 || !strings.Contains(got.Warnings[0], "expires") {
		t.Fatalf("key expiring tomorrow = %+v, %v; want accepted with a warning", got, err)
	}
}

func TestOnboardRefusesMissingKey(t *testing.T) {
	e := newEnv(t, nil)
	oe := refusal(t, refusalOf(e.kek.Onboard(t.Context(), e.url("nobody"), testOptions(true))), CodeKeyNotFound)
	if !errors.Is(oe, ErrNotFound) || !strings.Contains(oe.Fix, "az keyvault key create --vault-name <vault-name> --name nobody") {
		t.Fatalf("refusal = %+v", oe)
	}
	gone := e.create(t, "gone", azkeys.KeyTypeRSA)
	if _, err := e.admin.DeleteKey(t.Context(), "gone", nil); err != nil {
		t.Fatal(err)
	}
	oe = refusal(t, refusalOf(e.kek.Onboard(t.Context(), gone, testOptions(true))), CodeKeyDeleted)
	if oe.Fix != "az keyvault key recover --vault-name <vault-name> --name gone" {
		t.Fatalf("refusal = %+v", oe)
	}
}

func TestOnboardRefusesWithoutAccess(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(t, "locked", azkeys.KeyTypeRSA)
	e.srv.Revoke()
	oe := refusal(t, refusalOf(e.kek.Onboard(t.Context(), id, testOptions(true))), CodeAccessDenied)
	if !strings.Contains(oe.Problem, "Key Vault Crypto Service Encryption User") || !strings.Contains(oe.Fix, "az role assignment create") ||
		!errors.Is(oe, ErrAccessDenied) {
		t.Fatalf("refusal = %+v", oe)
	}
}

func TestOnboardVaultProblems(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxRetries = -1 })
	oe := refusal(t, refusalOf(e.kek.Onboard(t.Context(), cmkd.MustParseKeyID("https://elsewhere.example.com/keys/k"), testOptions(true))), CodeVaultNotAllowed)
	if !errors.Is(oe, ErrVaultNotAllowed) || !strings.Contains(oe.Fix, "VaultPolicy.DNSSuffixes") {
		t.Fatalf("refusal = %+v", oe)
	}

	e.create(t, "k", azkeys.KeyTypeRSA)
	e.srv.SetFaults(keyvault.Faults{ErrorRate: 1})
	_, err := e.kek.Onboard(t.Context(), e.url("k"), testOptions(true))
	refusal(t, err, CodeVaultUnreachable)
	if errors.Is(err, ErrNotOnboardable) || !errors.Is(err, ErrUnavailable) {
		t.Fatalf("an unreachable vault is not the key's fault: %v", err)
	}
}

func TestOnboardOctHSM(t *testing.T) {
	e := hsmEnv(t)
	id := e.create(t, "aes", azkeys.KeyTypeOctHSM)
	e.srv.ResetCalls()
	got, err := e.kek.Onboard(t.Context(), id, testOptions(true))
	if err != nil {
		t.Fatal(err)
	}
	if got.Kty != "oct-HSM" || got.KeySize != 256 || got.WrapAlg != algA256KW || !got.ManagedHSM {
		t.Fatalf("onboarding = %+v", got)
	}
	if c := e.srv.Calls(); c["wrapKey"] != 1 || c["unwrapKey"] != 1 {
		t.Fatalf("calls %v, want a remote wrap and unwrap", c)
	}
	if err := e.srv.SetSoftDelete(true, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := e.kek.Onboard(t.Context(), id, testOptions(false)); err != nil || len(got.Warnings) != 0 {
		t.Fatalf("purge-protected HSM: %+v, %v", got, err)
	}
	if err := e.srv.SetSoftDelete(false, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(got.Warnings[0], "az keyvault update-hsm --hsm-name <vault-name> --enable-purge-protection true") {
		t.Fatalf("HSM warning = %q", got.Warnings)
	}

	small := e.createWith(t, "aes128", azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr[int32](128), KeyOps: ops(wrapOps...),
	})
	got, err = e.kek.Onboard(t.Context(), small, testOptions(true))
	oe := refusal(t, err, CodeKeySize)
	if got.KeySize != 128 || !strings.Contains(oe.Problem, "AES-128") || !strings.Contains(oe.Fix, "--hsm-name <vault-name> --name aes128-oct --kty oct-HSM --size 256") {
		t.Fatalf("refusal = %+v, onboarding %+v", oe, got)
	}

	// In a Managed HSM, access is granted by its local RBAC role.
	e.srv.Revoke()
	oe = refusal(t, refusalOf(e.kek.Onboard(t.Context(), id, testOptions(true))), CodeAccessDenied)
	if !strings.Contains(oe.Problem, "Managed HSM Crypto Service Encryption User") || !strings.Contains(oe.Fix, "az keyvault role assignment create --hsm-name") {
		t.Fatalf("refusal = %+v", oe)
	}
}

// bundle is a key as Key Vault answers a GET, for the checks no emulated
// vault can reach: keys it will not create, and recovery levels.
func bundle(kty azkeys.KeyType, n []byte, level *string) azkeys.KeyBundle {
	kid := azkeys.ID("https://v.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef")
	return azkeys.KeyBundle{
		Key:        &azkeys.JSONWebKey{KID: &kid, Kty: &kty, N: n, E: []byte{1, 0, 1}, KeyOps: ops(wrapOps...)},
		Attributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true), RecoveryLevel: level},
	}
}

func modulus(bits int) []byte {
	n := make([]byte, bits/8)
	for i := range n {
		n[i] = byte(0x81 + i)
	}
	return n
}

func TestOnboardJudge(t *testing.T) {
	o := onboarding{id: cmkd.MustParseKeyID("https://myvault.vault.azure.net/keys/k")}
	now := time.Now()
	protected := to.Ptr("Recoverable")
	tests := []struct {
		name string
		b    azkeys.KeyBundle
		code string
	}{
		{"RSA 1024", bundle(azkeys.KeyTypeRSA, modulus(1024), protected), CodeKeySize},
		{"RSA 8192", bundle(azkeys.KeyTypeRSA, modulus(8192), protected), CodeKeySize},
		{"software oct", bundle(azkeys.KeyTypeOct, nil, protected), CodeKeyType},
		{"EC-HSM", bundle(azkeys.KeyTypeECHSM, nil, protected), CodeKeyType},
		{"RSA 2048", bundle(azkeys.KeyTypeRSA, modulus(2048), protected), ""},
	}
	for _, tt := range tests {
		got, oe := o.judge(tt.b, now, OnboardOptions{})
		switch {
		case tt.code == "" && oe != nil:
			t.Errorf("%s refused: %v", tt.name, oe)
		case tt.code != "" && (oe == nil || oe.Code != tt.code):
			t.Errorf("%s = %v, want %s", tt.name, oe, tt.code)
		case oe != nil:
			noKeyMaterial(t, oe.Error(), tt.b.Key.N)
			if !strings.Contains(oe.Fix, "--vault-name myvault") {
				t.Errorf("%s fix does not name the vault: %s", tt.name, oe.Fix)
			}
		}
		if got.Key.Version != "0123456789abcdef0123456789abcdef" {
			t.Errorf("%s: version %q not taken from the kid", tt.name, got.Key.Version)
		}
	}
}

// The decision on recoveryLevel, on every level Key Vault defines, the
// ones the emulator does not answer included.
func TestOnboardRecoveryLevel(t *testing.T) {
	o := onboarding{id: cmkd.MustParseKeyID("https://myvault.vault.azure.net/keys/k")}
	for level, ok := range map[string]bool{
		"Recoverable":                                 true,
		"CustomizedRecoverable":                       true,
		"Recoverable+ProtectedSubscription":           true,
		"CustomizedRecoverable+ProtectedSubscription": true,
		"Recoverable+Purgeable":                       false,
		"CustomizedRecoverable+Purgeable":             false,
		"Purgeable":                                   false,
		"":                                            false,
		"SomethingNew":                                false,
	} {
		var lp *string
		if level != "" {
			lp = &level
		}
		got, oe := o.judge(bundle(azkeys.KeyTypeRSAHSM, modulus(3072), lp), time.Now(), OnboardOptions{})
		if ok != (oe == nil) {
			t.Errorf("recoveryLevel %q: refusal %v, want accepted %v", level, oe, ok)
		}
		if ok && (got.RecoveryLevel != level || len(got.Warnings) != 0) {
			t.Errorf("recoveryLevel %q: onboarding %+v", level, got)
		}
		if !ok && (oe.Code != CodePurgeProtection || oe.Fix != "az keyvault update --name myvault --enable-purge-protection true") {
			t.Errorf("recoveryLevel %q: refusal %+v", level, oe)
		}
		got, oe = o.judge(bundle(azkeys.KeyTypeRSAHSM, modulus(3072), lp), time.Now(), OnboardOptions{AllowPurgeable: true})
		if oe != nil || ok == (len(got.Warnings) == 1) {
			t.Errorf("recoveryLevel %q with AllowPurgeable: %+v, %v", level, got, oe)
		}
	}
}

// Access failures name the remedy of the access model the vault uses, at
// reading and at the round trip's unwrap alike.
func TestOnboardAccessFixes(t *testing.T) {
	o := onboarding{id: cmkd.MustParseKeyID("https://myvault.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef")}
	tests := []struct {
		ke        *Error
		code, fix string
	}{
		{&Error{Kind: ErrAccessDenied, Status: 403, Inner: "ForbiddenByRbac"}, CodeAccessDenied, `az role assignment create --role "Key Vault Crypto Service Encryption User"`},
		{&Error{Kind: ErrAccessDenied, Status: 403, Inner: "AccessDenied"}, CodeAccessDenied, "az keyvault set-policy --name myvault --object-id <cmkd's principal id> --key-permissions get wrapKey unwrapKey"},
		{&Error{Kind: ErrAccessDenied, Status: 403}, CodeAccessDenied, "set-policy"},
		{&Error{Kind: ErrAccessDenied, Status: 403, Inner: "ForbiddenByFirewall"}, CodeNetworkDenied, "az keyvault network-rule add --name myvault"},
		{&Error{Kind: ErrAccessDenied, Status: 401}, CodeCredentialRefused, "credential"},
		{&Error{Kind: ErrThrottled, Status: 429}, CodeVaultUnreachable, "retry"},
	}
	for _, tt := range tests {
		for _, err := range []error{o.callRefused(tt.ke, "read"), o.useRefused(tt.ke)} {
			oe := refusal(t, err, tt.code)
			if !strings.Contains(oe.Fix, tt.fix) {
				t.Errorf("%v: fix %q lacks %q", tt.ke, oe.Fix, tt.fix)
			}
		}
	}
	// A missing unwrap permission shows at the round trip.
	oe := refusal(t, o.useRefused(&Error{Kind: ErrAccessDenied, Status: 403, Inner: "ForbiddenByRbac"}), CodeAccessDenied)
	if !strings.Contains(oe.Problem, "may not wrap or unwrap with the key") {
		t.Errorf("round trip refusal = %+v", oe)
	}
}
