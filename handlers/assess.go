package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// Seal reasons, as status events and SealedError carry them.
const (
	ReasonDisabled     = "disabled"
	ReasonDeleted      = "deleted"
	ReasonPurged       = "purged"
	ReasonAccessDenied = "access_denied"
	ReasonUnreachable  = "unreachable"
	ReasonExpired      = "expired"
	// ReasonIntegrity: Key Vault unwrapped a DEK to bytes that do not match
	// its key check value. Nothing should ever produce it; fail closed.
	ReasonIntegrity = "integrity"
)

// assessment is what a probe found out about a key.
type assessment struct {
	latest     kek.KeyState
	inUse      map[string]int // version → DEKs wrapped by it
	sealReason string         // non-empty: seal
	detail     error          // why, for logs
	transient  error          // non-nil: Key Vault could not say
}

// assess reads the key's latest version and proves, for every version DEKs
// are wrapped under, that Key Vault still unwraps with it: a key can be
// readable while unwrap is denied, and only unwrap matters.
func (r *Reconciler) assess(ctx context.Context, keyURL string) (assessment, error) {
	var a assessment
	latest, err := r.kek.Probe(ctx, keyURL)
	if err != nil {
		return a, err
	}
	a.latest = latest
	if a.judgeOutcome(latest.Outcome, latest.Err) {
		return a, nil
	}
	if a.inUse, err = r.store.VersionCounts(ctx, keyURL); err != nil {
		return a, err
	}
	versions := inUseVersions(a.inUse)
	if len(versions) == 0 {
		// No DEK yet: the latest version is the one that matters.
		if latest.Outcome == kek.Disabled {
			a.sealReason, a.detail = ReasonDisabled, latest.Err
		}
		return a, nil
	}
	for _, v := range versions {
		err := r.store.VerifyVersion(ctx, keyURL, v)
		if err == nil {
			continue
		}
		if errors.Is(err, store.ErrIntegrity) {
			a.sealReason, a.detail = ReasonIntegrity, err
			return a, nil
		}
		if a.judgeOutcome(outcomeOfError(err), err) {
			return a, nil
		}
		return a, fmt.Errorf("verify version %s: %w", v, err)
	}
	return a, nil
}

// judgeOutcome records a key-level verdict; it reports whether there was one.
func (a *assessment) judgeOutcome(o kek.Outcome, err error) bool {
	switch o {
	case kek.AccessDenied:
		a.sealReason = ReasonAccessDenied
	case kek.Deleted:
		a.sealReason = ReasonDeleted
	case kek.Purged:
		a.sealReason = ReasonPurged
	case kek.Unreachable, kek.Throttled:
		a.transient = err
		return true
	case kek.Disabled:
		// The latest version being disabled seals only if DEKs need it;
		// verifying the versions in use decides. Versioned unwraps that
		// fail with KeyDisabled come back here from outcomeOfError.
		if a.inUse == nil {
			return false
		}
		a.sealReason = ReasonDisabled
	default:
		return false
	}
	a.detail = err
	return true
}

// outcomeOfError classifies an unwrap error like a probe outcome.
func outcomeOfError(err error) kek.Outcome {
	switch {
	case errors.Is(err, kek.ErrDisabled):
		return kek.Disabled
	case errors.Is(err, kek.ErrAccessDenied), errors.Is(err, kek.ErrOperationForbidden):
		return kek.AccessDenied
	case errors.Is(err, kek.ErrNotFound):
		return kek.Purged
	case errors.Is(err, kek.ErrThrottled):
		return kek.Throttled
	case errors.Is(err, kek.ErrUnavailable):
		return kek.Unreachable
	}
	return ""
}

func inUseVersions(counts map[string]int) []string {
	var vs []string
	for v, n := range counts {
		if n > 0 {
			vs = append(vs, v)
		}
	}
	slices.Sort(vs)
	return vs
}
