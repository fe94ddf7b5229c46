package kek

import (
	"errors"
	"fmt"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// WrapTarget is the one decision of where DEKs go: the newest version that
// is enabled, valid and allowed to wrap and unwrap.
func TestWrapTarget(t *testing.T) {
	e := newEnv(t, nil)
	v1 := e.create(t, "k", azkeys.KeyTypeRSA)
	v2 := e.rotate(t, "k")
	target := func() string {
		t.Helper()
		st, err := e.kek.Probe(t.Context(), e.url("k"))
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.kek.WrapTarget(t.Context(), st)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := target(); got != v2.Version {
		t.Fatalf("target %q, want the latest %s", got, v2.Version)
	}
	// A latest version that probes usable but may not wrap is skipped.
	if _, err := e.admin.UpdateKey(t.Context(), "k", v2.Version, azkeys.UpdateKeyParameters{
		KeyOps: ops(azkeys.KeyOperationUnwrapKey, azkeys.KeyOperationDecrypt)}, nil); err != nil {
		t.Fatal(err)
	}
	e.kek.Invalidate(e.url("k"))
	if got := target(); got != v1.Version {
		t.Fatalf("target %q with %s unable to wrap, want %s", got, v2.Version, v1.Version)
	}
	// So is a disabled one; with none left there is no target.
	e.update(t, v1, azkeys.KeyAttributes{Enabled: ptr(false)})
	e.kek.Invalidate(e.url("k"))
	if got := target(); got != "" {
		t.Fatalf("target %q with no version able to wrap, want none", got)
	}
	// A key that is gone has none either, and no error: nothing may move.
	if _, err := e.admin.DeleteKey(t.Context(), "k", nil); err != nil {
		t.Fatal(err)
	}
	if got := target(); got != "" {
		t.Fatalf("target %q of a deleted key, want none", got)
	}
}

// OutcomeOf is the one classification of a failed call; handlers never
// re-classify.
func TestOutcomeOf(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want Outcome
	}{
		{&Error{Kind: ErrDisabled}, Disabled},
		{fmt.Errorf("unwrap: %w", &Error{Kind: ErrAccessDenied}), AccessDenied},
		{&Error{Kind: ErrOperationForbidden}, AccessDenied},
		{&Error{Kind: ErrThrottled}, Throttled},
		{&Error{Kind: ErrExpired}, Expired},
		{&Error{Kind: ErrNotYetValid}, NotYetValid},
		{&Error{Kind: ErrNotFound}, Purged},
		{&Error{Kind: ErrUnavailable}, Unreachable},
		{&Error{Kind: ErrBadRequest}, ""},
		{errors.New("not kek's"), ""},
		{nil, ""},
	} {
		if got := OutcomeOf(tt.err); got != tt.want {
			t.Errorf("OutcomeOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// The CLI's vault commands go through kek; its errors come back classified.
func TestAdmin(t *testing.T) {
	e := newEnv(t, nil)
	info, err := e.kek.CreateKey(t.Context(), e.srv.URL(), "Admin-Key", "RSA", 2048)
	if err != nil || info.Kty != "RSA" || !info.Enabled || info.KID.Version == "" {
		t.Fatalf("create = %+v, %v", info, err)
	}
	key := info.KID.Versionless()
	rot, err := e.kek.RotateKey(t.Context(), key)
	if err != nil || rot.KID.Version == info.KID.Version {
		t.Fatalf("rotate = %+v, %v", rot, err)
	}
	off, err := e.kek.SetEnabled(t.Context(), rot.KID, false)
	if err != nil || off.Enabled {
		t.Fatalf("disable = %+v, %v", off, err)
	}
	if st, _ := e.kek.Probe(t.Context(), key); st.Outcome != Disabled {
		t.Fatalf("probe after disable: %s", st.Outcome)
	}
	if _, err := e.kek.DeleteKey(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kek.RecoverKey(t.Context(), key); err != nil {
		t.Fatal(err)
	}
	if err := e.kek.PurgeKey(t.Context(), key); !errors.Is(err, ErrNotFound) {
		t.Fatalf("purge of a key that is not deleted: %v, want ErrNotFound", err)
	}
	var ke *Error
	if _, err := e.kek.RotateKey(t.Context(), e.url("missing")); !errors.As(err, &ke) || ke.Status != 404 {
		t.Fatalf("rotate of a missing key: %v, want a classified 404", err)
	}
}
