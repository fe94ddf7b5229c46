package kek

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
)

// Onboarding makes the checks Azure services make before they accept a
// customer-managed key, before cmkd accepts a tenant's key: refusing a key
// then costs a message; finding it unusable later costs a tenant's data.

// Codes of onboarding refusals (OnboardError.Code). They are stable: the
// CLI maps them to exit codes, and operators look them up.
const (
	// CodeVaultNotAllowed: the key's vault is outside Config.Policy.
	CodeVaultNotAllowed = "vault_not_allowed"
	// CodeVaultUnreachable: the vault did not answer, or kept throttling;
	// nothing was learnt about the key, so try again later. It is the only
	// code that does not match ErrNotOnboardable.
	CodeVaultUnreachable = "vault_unreachable"
	// CodeCredentialRefused: the vault (or Entra ID) refused cmkd's
	// credential itself (401, or no token could be had).
	CodeCredentialRefused = "credential_refused" // #nosec G101 -- a refusal code, not a credential
	// CodeNetworkDenied: the vault's firewall or private-link settings
	// refused cmkd's connection (403 ForbiddenByFirewall/ForbiddenByConnection).
	CodeNetworkDenied = "network_denied"
	// CodeAccessDenied: cmkd's identity may not get, wrap or unwrap with
	// the key (403): an RBAC role or access policy is missing.
	CodeAccessDenied = "access_denied"
	// CodeKeyNotFound: no such key, or no such version of it.
	CodeKeyNotFound = "key_not_found"
	// CodeKeyDeleted: the key is soft-deleted; it can be recovered.
	CodeKeyDeleted = "key_deleted"
	// CodeKeyType: not an RSA, RSA-HSM or (in a Managed HSM) oct-HSM key:
	// EC keys, software oct keys, and oct-HSM keys outside a Managed HSM.
	CodeKeyType = "key_type_unsupported"
	// CodeKeySize: an RSA key other than 2048, 3072 or 4096 bits, or an
	// oct-HSM key that cannot wrap with A256KW (not AES-256).
	CodeKeySize = "key_size_unsupported"
	// CodeKeyOps: the key's key_ops lack wrapKey or unwrapKey.
	CodeKeyOps = "key_ops_missing"
	// CodeKeyDisabled: the key version is disabled.
	CodeKeyDisabled = "key_disabled"
	// CodeKeyNotYetValid: the key version's nbf is in the future.
	CodeKeyNotYetValid = "key_not_yet_valid"
	// CodeKeyExpired: the key version's exp has passed.
	CodeKeyExpired = "key_expired"
	// CodePurgeProtection: the vault lacks soft delete with purge
	// protection (recoveryLevel contains "Purgeable" or is missing), so the
	// key could be destroyed for good. OnboardOptions.AllowPurgeable
	// accepts it with a warning, for test vaults.
	CodePurgeProtection = "purge_protection_off"
	// CodeVaultRefused: the vault refused a request as malformed (400, 409)
	// where no key problem explains it.
	CodeVaultRefused = "vault_refused"
	// CodeRoundTrip: the live wrap and unwrap of random bytes did not give
	// the bytes back.
	CodeRoundTrip = "round_trip_failed"
)

// ErrNotOnboardable is matched by every *OnboardError but one whose Code is
// CodeVaultUnreachable: the key, its vault or cmkd's access to them must
// change before the key can be onboarded.
var ErrNotOnboardable = errors.New("key cannot be onboarded")

// OnboardError is an onboarding refusal: a stable Code, the key, what is
// wrong (Problem) and the exact remedy (Fix). It never holds key material.
// errors.Is matches ErrNotOnboardable (except for CodeVaultUnreachable) and
// the kek sentinel of the Key Vault answer behind it, if any
// (ErrAccessDenied, ErrNotFound, ErrUnavailable, ErrVaultNotAllowed, ...).
type OnboardError struct {
	Code    string
	Key     cmkd.KeyID // the version checked, when the key could be read
	Problem string
	Fix     string
	cause   error
}

func (e *OnboardError) Error() string {
	return fmt.Sprintf("onboard %s: %s (%s); fix: %s", e.Key, e.Problem, e.Code, e.Fix)
}

// Unwrap exposes ErrNotOnboardable and the classified cause.
func (e *OnboardError) Unwrap() []error {
	var errs []error
	if e.Code != CodeVaultUnreachable {
		errs = append(errs, ErrNotOnboardable)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// OnboardOptions adjust Onboard.
type OnboardOptions struct {
	// AllowPurgeable accepts a vault without purge protection, with a
	// warning in Onboarding.Warnings. For test vaults only: a purged key
	// takes every DEK wrapped under it along.
	AllowPurgeable bool

	rand io.Reader // the round trip's bytes; crypto/rand when nil (tests set it)
}

// Onboarding is what Onboard checked.
type Onboarding struct {
	Key        cmkd.KeyID // the version checked
	Kty        string
	KeySize    int // bits: the RSA modulus; for oct-HSM, the AES key wrap that worked
	ManagedHSM bool
	Ops        []string
	NotBefore  time.Time // zero when unset
	Expires    time.Time // zero when unset
	// RecoveryLevel is the key's attributes.recoveryLevel, "" when the
	// vault gave none; RecoverableDays its soft-delete retention.
	RecoveryLevel   string
	RecoverableDays int
	WrapAlg         string // the round trip's wrap algorithm
	Warnings        []string
}

// nearExpiry is how close an expiry must be to earn a warning.
const nearExpiry = 30 * 24 * time.Hour

// roundTripBytes is the size of the random DEK the live check wraps.
const roundTripBytes = 32

// Onboard checks that key can serve as a tenant's key-encryption key, in
// the order that makes each refusal the most useful one: the vault is
// allowed and answers, the key exists and cmkd may read it; then the key
// type and size (RSA 2048, 3072 or 4096, as RSA or RSA-HSM, or an AES-256
// oct-HSM key in a Managed HSM); key_ops allow wrapKey and unwrapKey; the
// version is enabled and inside its validity window; the vault has soft
// delete with purge protection (attributes.recoveryLevel "Recoverable" or
// "CustomizedRecoverable", optionally "+ProtectedSubscription"); and last a
// live round trip of 32 random bytes through Wrap and Unwrap, so that a
// missing unwrap permission shows now rather than at a tenant's first read.
//
// A versionless key means its latest version. A refusal is an
// *OnboardError; after the key was read, the Onboarding returned with it
// holds what was read. An invalid key id or an ended ctx are returned as
// they are. The read refreshes the probe cache as Probe does, so the round
// trip wraps under the very version that was checked, without a second GET.
func (c *Client) Onboard(ctx context.Context, key cmkd.KeyID, opt OnboardOptions) (Onboarding, error) {
	if err := checkID(key); err != nil {
		return Onboarding{}, err
	}
	o := onboarding{id: key, hsm: c.ManagedHSM(key.Vault)}
	v, err := c.vault(key.Vault)
	if err != nil {
		var na *VaultNotAllowedError
		if errors.As(err, &na) {
			return Onboarding{}, o.refuse(CodeVaultNotAllowed, err, "the vault is not allowed: "+na.Reason+".",
				fmt.Sprintf("allow the vault in cmkd's vault policy (VaultPolicy.%s) if it is one you trust", na.Field))
		}
		return Onboarding{}, o.refuse(CodeVaultUnreachable, err, "the vault's client could not be made.", "check the vault URL")
	}
	b, issued, err := c.getKey(ctx, v, key)
	if ctx.Err() != nil {
		return Onboarding{}, ctx.Err()
	}
	if err != nil {
		return Onboarding{}, c.readRefused(ctx, v, o, classify(err))
	}
	res, oerr := o.judge(b, time.Now(), opt)
	if oerr != nil {
		return res, oerr
	}
	o.id = res.Key
	if _, err := c.record(key, b, issued); err != nil {
		return res, err
	}
	alg, err := c.roundTrip(ctx, res.Key, opt.rand)
	if ctx.Err() != nil {
		return res, ctx.Err()
	}
	if err != nil {
		return res, o.useRefused(err)
	}
	res.WrapAlg = alg
	if res.Kty == string(azkeys.KeyTypeOctHSM) {
		res.KeySize = aesKWBits(alg)
		if alg != algA256KW {
			return res, o.refuse(CodeKeySize, nil,
				fmt.Sprintf("the oct-HSM key wraps with %s, not A256KW: it is AES-%d, and cmkd needs AES-256.", alg, res.KeySize),
				o.createFix("oct-HSM", 256))
		}
	}
	return res, nil
}

// roundTrip wraps random bytes with Wrap and unwraps them with Unwrap.
func (c *Client) roundTrip(ctx context.Context, id cmkd.KeyID, r io.Reader) (string, error) {
	if r == nil {
		r = rand.Reader
	}
	dek := make([]byte, roundTripBytes)
	if _, err := io.ReadFull(r, dek); err != nil {
		return "", fmt.Errorf("random bytes: %w", err)
	}
	w, err := c.Wrap(ctx, id, dek)
	if err != nil {
		return "", err
	}
	got, err := c.Unwrap(ctx, w)
	if err != nil {
		return w.Alg, err
	}
	if !bytes.Equal(got, dek) {
		return w.Alg, errRoundTrip
	}
	return w.Alg, nil
}

var errRoundTrip = errors.New("unwrap returned other bytes than were wrapped")

func aesKWBits(alg string) int {
	switch alg {
	case algA128KW:
		return 128
	case algA192KW:
		return 192
	case algA256KW:
		return 256
	}
	return 0
}

// onboarding is one Onboard's key and where it lives, for the messages.
type onboarding struct {
	id  cmkd.KeyID
	hsm bool
}

func (o onboarding) refuse(code string, cause error, problem, fix string) *OnboardError {
	return &OnboardError{Code: code, Key: o.id, Problem: problem, Fix: fix, cause: cause}
}

// judge makes the checks a key bundle answers, in Onboard's order.
func (o onboarding) judge(b azkeys.KeyBundle, now time.Time, opt OnboardOptions) (Onboarding, *OnboardError) {
	if b.Key == nil || b.Key.Kty == nil {
		return Onboarding{}, o.refuse(CodeVaultRefused, nil, "the vault's answer holds no key.", "check that the URL names a Key Vault or Managed HSM key")
	}
	res := Onboarding{Key: o.id, Kty: string(*b.Key.Kty), ManagedHSM: o.hsm}
	if b.Key.KID != nil {
		if ver := b.Key.KID.Version(); ver != "" {
			res.Key = o.id.At(ver)
		}
	}
	o.id = res.Key
	for _, op := range b.Key.KeyOps {
		if op != nil {
			res.Ops = append(res.Ops, string(*op))
		}
	}
	enabled := false
	if a := b.Attributes; a != nil {
		enabled = a.Enabled != nil && *a.Enabled
		res.NotBefore, res.Expires = timeOf(a.NotBefore), timeOf(a.Expires)
		if a.RecoveryLevel != nil {
			res.RecoveryLevel = *a.RecoveryLevel
		}
		if a.RecoverableDays != nil {
			res.RecoverableDays = int(*a.RecoverableDays)
		}
	}
	switch kty := azkeys.KeyType(res.Kty); {
	case kty == azkeys.KeyTypeRSA || kty == azkeys.KeyTypeRSAHSM:
		res.KeySize = new(big.Int).SetBytes(b.Key.N).BitLen()
		if res.KeySize != 2048 && res.KeySize != 3072 && res.KeySize != 4096 {
			return res, o.refuse(CodeKeySize, nil,
				fmt.Sprintf("the key is %s with %d bits; cmkd needs RSA with 2048, 3072 or 4096 bits.", res.Kty, res.KeySize),
				o.createFix(o.rsaKty(), 3072))
		}
	case kty == azkeys.KeyTypeOctHSM && o.hsm:
		// Its size shows in the round trip: only AES-256 wraps with A256KW.
	case kty == azkeys.KeyTypeOctHSM:
		return res, o.refuse(CodeKeyType, nil,
			"the key is oct-HSM, which cmkd accepts only in a Managed HSM, and this vault is not one.",
			o.createFix("RSA", 3072)+" (an emulator standing in for a Managed HSM is listed in kek's Config.ManagedHSMs)")
	default:
		what := "the key is " + res.Kty
		if kty == azkeys.KeyTypeOct {
			what += " (software-protected AES)"
		}
		return res, o.refuse(CodeKeyType, nil,
			what+"; cmkd needs RSA or RSA-HSM with 2048, 3072 or 4096 bits, or oct-HSM AES-256 in a Managed HSM.",
			o.createFix(o.rsaKty(), 3072))
	}
	if missing := missingOps(res.Ops); len(missing) > 0 {
		want := slices.Clone(res.Ops)
		want = append(want, missing...)
		return res, o.refuse(CodeKeyOps, ErrOperationForbidden,
			fmt.Sprintf("the key's key_ops [%s] lack %s.", strings.Join(res.Ops, " "), strings.Join(missing, " and ")),
			fmt.Sprintf("az keyvault key set-attributes %s --ops %s", o.versionArgs(), strings.Join(want, " ")))
	}
	switch {
	case !enabled:
		return res, o.refuse(CodeKeyDisabled, ErrDisabled, "the key version is disabled.",
			fmt.Sprintf("az keyvault key set-attributes %s --enabled true", o.versionArgs()))
	case !res.NotBefore.IsZero() && now.Before(res.NotBefore):
		return res, o.refuse(CodeKeyNotYetValid, ErrNotYetValid,
			fmt.Sprintf("the key version is not valid before %s (nbf).", res.NotBefore.UTC().Format(time.RFC3339)),
			fmt.Sprintf("wait until then, or az keyvault key set-attributes %s --not-before %s",
				o.versionArgs(), now.UTC().Format("2006-01-02T15:04:05Z")))
	case !res.Expires.IsZero() && !now.Before(res.Expires):
		return res, o.refuse(CodeKeyExpired, ErrExpired,
			fmt.Sprintf("the key version expired at %s (exp).", res.Expires.UTC().Format(time.RFC3339)),
			fmt.Sprintf("make a new version with az keyvault key rotate %s --name %s, or set a later expiry with az keyvault key set-attributes %s --expires <YYYY-MM-DDTHH:MM:SSZ>",
				o.vaultArgs(), o.id.Name, o.versionArgs()))
	case !res.Expires.IsZero() && res.Expires.Sub(now) < nearExpiry:
		res.Warnings = append(res.Warnings, fmt.Sprintf("the key version expires at %s: rotate the key or set a later expiry before then.",
			res.Expires.UTC().Format(time.RFC3339)))
	}
	if !purgeProtected(res.RecoveryLevel) {
		level := "no recoveryLevel"
		if res.RecoveryLevel != "" {
			level = "recoveryLevel " + res.RecoveryLevel
		}
		if !opt.AllowPurgeable {
			return res, o.refuse(CodePurgeProtection, nil,
				fmt.Sprintf("the vault reports %s: without soft delete and purge protection the key can be destroyed for good, and every DEK wrapped under it with it.", level),
				o.purgeFix())
		}
		res.Warnings = append(res.Warnings, fmt.Sprintf("purge protection is off (%s), accepted for a test vault: a purged key loses every DEK wrapped under it; fix: %s.", level, o.purgeFix()))
	}
	return res, nil
}

// purgeProtected reports recovery levels of a vault with soft delete and
// purge protection. Every level that contains "Purgeable", an unknown
// level and a missing one are not.
func purgeProtected(level string) bool {
	switch level {
	case "Recoverable", "CustomizedRecoverable",
		"Recoverable+ProtectedSubscription", "CustomizedRecoverable+ProtectedSubscription":
		return true
	}
	return false
}

func missingOps(ops []string) []string {
	var missing []string
	for _, op := range []string{string(azkeys.KeyOperationWrapKey), string(azkeys.KeyOperationUnwrapKey)} {
		if !slices.Contains(ops, op) {
			missing = append(missing, op)
		}
	}
	return missing
}

// readRefused turns a failed GET into a refusal.
func (c *Client) readRefused(ctx context.Context, v *vault, o onboarding, ke *Error) error {
	if ke.Kind == ErrNotFound {
		rec, err := c.probeDeleted(ctx, v, o.id, ke)
		if err != nil {
			return ctx.Err()
		}
		if rec.state.Outcome == Deleted {
			return o.refuse(CodeKeyDeleted, ke, "the key is soft-deleted.",
				fmt.Sprintf("az keyvault key recover %s --name %s", o.vaultArgs(), o.id.Name))
		}
		what := "the vault has no key " + o.id.Name
		if o.id.Version != "" {
			what = fmt.Sprintf("the vault has no version %s of key %s", o.id.Version, o.id.Name)
		}
		return o.refuse(CodeKeyNotFound, ke, what+".",
			fmt.Sprintf("check the key URL (az keyvault key list-versions %s --name %s), or create the key: %s",
				o.vaultArgs(), o.id.Name, o.createCmd(o.id.Name, o.rsaKty(), 3072)))
	}
	return o.callRefused(ke, "read")
}

// useRefused turns a failed round trip into a refusal. Wrap may refuse
// from a probe (a bare sentinel) or from the vault's answer (an *Error).
func (o onboarding) useRefused(err error) error {
	var ke *Error
	errors.As(err, &ke)
	cause := error(ke)
	if ke == nil {
		cause = err
	}
	switch {
	case errors.Is(err, errRoundTrip):
		return o.refuse(CodeRoundTrip, nil, "the live round trip failed: "+errRoundTrip.Error()+".",
			"do not use this key; report the vault's behaviour")
	case errors.Is(err, ErrDisabled):
		return o.refuse(CodeKeyDisabled, cause, "the vault refused to use the key version: it is disabled.",
			fmt.Sprintf("az keyvault key set-attributes %s --enabled true", o.versionArgs()))
	case errors.Is(err, ErrExpired):
		return o.refuse(CodeKeyExpired, cause, "the vault refused to use the key version: it has expired.",
			fmt.Sprintf("az keyvault key rotate %s --name %s", o.vaultArgs(), o.id.Name))
	case errors.Is(err, ErrNotYetValid):
		return o.refuse(CodeKeyNotYetValid, cause, "the vault refused to use the key version: it is not yet valid.",
			fmt.Sprintf("az keyvault key set-attributes %s --not-before <now>", o.versionArgs()))
	case errors.Is(err, ErrOperationForbidden):
		return o.refuse(CodeKeyOps, cause, "the vault refused to wrap or unwrap with the key: its key_ops do not allow it.",
			fmt.Sprintf("az keyvault key set-attributes %s --ops wrapKey unwrapKey", o.versionArgs()))
	case errors.Is(err, ErrNotFound):
		return o.refuse(CodeKeyNotFound, cause, "the key vanished during the check.", "check whether it was deleted, then retry")
	case errors.Is(err, ErrBadRequest):
		return o.refuse(CodeVaultRefused, cause, "the vault refused the wrap or unwrap request as malformed.",
			"use a key type cmkd supports: "+o.createCmd(o.id.Name+"-rsa", o.rsaKty(), 3072))
	case ke != nil:
		return o.callRefused(ke, "use")
	}
	return o.refuse(CodeRoundTrip, err, "the live round trip failed.", "retry; if it persists, report it")
}

// callRefused is a refusal for access, credential, network and
// availability failures; stage is "read" (the GET) or "use" (wrap/unwrap).
func (o onboarding) callRefused(ke *Error, stage string) error {
	switch ke.Kind {
	case ErrUnavailable, ErrThrottled:
		what := "the vault is unavailable: it did not answer"
		if ke.Kind == ErrThrottled {
			what = "the vault kept throttling cmkd's calls"
		}
		return o.refuse(CodeVaultUnreachable, ke, what+"; nothing was learnt about the key.",
			"check the vault URL and cmkd's network path to it, then retry")
	case ErrAccessDenied:
	default:
		return o.refuse(CodeVaultRefused, ke, fmt.Sprintf("the vault refused the request (%d %s).", ke.Status, ke.Code),
			"check the key URL, then retry")
	}
	if ke.Status != 403 {
		return o.refuse(CodeCredentialRefused, ke, "the vault did not accept cmkd's credential.",
			"check cmkd's Azure credential (client id, tenant): its identity must belong to the vault's Entra ID tenant")
	}
	act := "read the key"
	if stage == "use" {
		act = "wrap or unwrap with the key, though it may read it"
	}
	switch ke.Inner {
	case "ForbiddenByFirewall", "ForbiddenByConnection":
		return o.refuse(CodeNetworkDenied, ke, fmt.Sprintf("the vault's network rules refused cmkd's connection (%s).", ke.Inner),
			o.networkFix())
	case "ForbiddenByRbac":
		return o.refuse(CodeAccessDenied, ke,
			fmt.Sprintf("cmkd's identity may not %s: the role %s is missing (%s).", act, o.role(), ke.Inner),
			o.rbacFix())
	case "AccessDenied", "ForbiddenByPolicy":
		return o.refuse(CodeAccessDenied, ke,
			fmt.Sprintf("cmkd's identity may not %s: the vault's access policy lacks get, wrapKey or unwrapKey (%s).", act, ke.Inner),
			o.policyFix())
	}
	return o.refuse(CodeAccessDenied, ke,
		fmt.Sprintf("cmkd's identity may not %s (403 %s): the role %s, or an access policy with get, wrapKey and unwrapKey, is missing.",
			act, ke.Inner, o.role()),
		o.rbacFix()+"; on a vault with access policies instead: "+o.policyFix())
}

func (o onboarding) role() string {
	if o.hsm {
		return "Managed HSM Crypto Service Encryption User"
	}
	return "Key Vault Crypto Service Encryption User"
}

func (o onboarding) rbacFix() string {
	if o.hsm {
		return fmt.Sprintf("az keyvault role assignment create --hsm-name %s --role %q --assignee <cmkd's principal id> --scope /keys/%s",
			o.vaultName(), o.role(), o.id.Name)
	}
	return fmt.Sprintf("az role assignment create --role %q --assignee <cmkd's principal id> --scope $(az keyvault show --name %s --query id -o tsv)/keys/%s",
		o.role(), o.vaultName(), o.id.Name)
}

func (o onboarding) policyFix() string {
	return fmt.Sprintf("az keyvault set-policy --name %s --object-id <cmkd's principal id> --key-permissions get wrapKey unwrapKey", o.vaultName())
}

func (o onboarding) networkFix() string {
	if o.hsm {
		return "allow cmkd's network in the Managed HSM's network rules, or reach it over a private endpoint"
	}
	return fmt.Sprintf("az keyvault network-rule add --name %s --ip-address <cmkd's egress address>, or reach the vault over a private endpoint", o.vaultName())
}

func (o onboarding) purgeFix() string {
	if o.hsm {
		return fmt.Sprintf("az keyvault update-hsm --hsm-name %s --enable-purge-protection true", o.vaultName())
	}
	return fmt.Sprintf("az keyvault update --name %s --enable-purge-protection true", o.vaultName())
}

// createFix names the command that makes a key cmkd accepts.
func (o onboarding) createFix(kty string, bits int) string {
	return "create a key cmkd accepts and onboard it: " + o.createCmd(o.id.Name+"-"+strings.ToLower(strings.TrimSuffix(kty, "-HSM")), kty, bits)
}

func (o onboarding) createCmd(name, kty string, bits int) string {
	return fmt.Sprintf("az keyvault key create %s --name %s --kty %s --size %d --ops wrapKey unwrapKey", o.vaultArgs(), name, kty, bits)
}

func (o onboarding) rsaKty() string {
	if o.hsm {
		return string(azkeys.KeyTypeRSAHSM)
	}
	return string(azkeys.KeyTypeRSA)
}

// vaultArgs are the az arguments naming the vault or HSM.
func (o onboarding) vaultArgs() string {
	if o.hsm {
		return "--hsm-name " + o.vaultName()
	}
	return "--vault-name " + o.vaultName()
}

// versionArgs are the az arguments naming the key version.
func (o onboarding) versionArgs() string {
	s := o.vaultArgs() + " --name " + o.id.Name
	if o.id.Version != "" {
		s += " --version " + o.id.Version
	}
	return s
}

// vaultName is the vault's name as az takes it: the first label of its
// host; a placeholder for a host that is an address (the emulator).
func (o onboarding) vaultName() string {
	h, _, _ := strings.Cut(o.id.Host(), ":")
	name, _, found := strings.Cut(h, ".")
	if !found || net.ParseIP(strings.Trim(h, "[]")) != nil {
		return "<vault-name>"
	}
	return name
}
