package handlers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// assessment is what a probe found out about a key.
type assessment struct {
	at         time.Time // when the probe began
	latest     kek.KeyState
	inUse      map[string]int // version → DEKs wrapped by it
	sealReason string         // non-empty: seal
	detail     error          // why, for logs
	setAside   int            // sentinel DEKs set aside as unreadable
	transient  error          // non-nil: Key Vault could not say
}

// assess reads the key's latest version and proves, for every version DEKs
// are wrapped under, that Key Vault still unwraps with it: a key can be
// readable while unwrap is denied, and only unwrap matters. Key Vault calls
// get at most wait (0: no bound): one that has not answered by then counts
// as unreachable.
func (r *Reconciler) assess(ctx context.Context, key cmkd.KeyID, wait time.Duration) (assessment, error) {
	a := assessment{at: r.cfg.Now()}
	kctx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		kctx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	// cut reports a call that ran out of wait, not of ctx, and records it
	// as Key Vault not answering.
	cut := func(err error) bool {
		if kctx.Err() == nil || ctx.Err() != nil {
			return false
		}
		a.transient = fmt.Errorf("key vault did not answer within what is left of the unreachable grace (%s): %w", wait, err)
		return true
	}
	latest, err := r.kek.Probe(kctx, key)
	if cut(err) {
		return a, nil
	}
	if err != nil {
		return a, err
	}
	a.latest = latest
	if a.judgeOutcome(latest.Outcome, latest.Err) {
		return a, nil
	}
	if a.inUse, err = r.store.VersionCounts(ctx, key); err != nil {
		return a, err
	}
	versions := inUseVersions(a.inUse)
	if len(versions) == 0 {
		// No DEK yet: the latest version is the one that matters.
		if latest.Outcome == kek.Disabled {
			a.sealReason, a.detail = cmkd.ReasonDisabled, latest.Err
		}
		return a, nil
	}
	setAside := 0
	for _, v := range versions {
		n, err := r.verifyVersion(kctx, key.At(v))
		setAside += n
		if err == nil {
			continue
		}
		if cut(err) {
			return a, nil
		}
		if errors.Is(err, store.ErrIntegrity) {
			a.sealReason, a.detail = cmkd.ReasonIntegrity, err
			return a, nil
		}
		if a.judgeOutcome(kek.OutcomeOf(err), err) {
			return a, nil
		}
		return a, fmt.Errorf("verify version %s: %w", v, err)
	}
	a.setAside = setAside
	if setAside > 0 { // they no longer count
		if a.inUse, err = r.store.VersionCounts(ctx, key); err != nil {
			return a, err
		}
	}
	return a, nil
}

// judgeOutcome records a key-level verdict; it reports whether there was one.
func (a *assessment) judgeOutcome(o kek.Outcome, err error) bool {
	switch o {
	case kek.AccessDenied:
		a.sealReason = cmkd.ReasonAccessDenied
	case kek.Deleted:
		a.sealReason = cmkd.ReasonDeleted
	case kek.Purged:
		a.sealReason = cmkd.ReasonPurged
	case kek.Unreachable, kek.Throttled:
		a.transient = err
		return true
	case kek.Disabled:
		// The latest version being disabled seals only if DEKs need it;
		// verifying the versions in use decides. Versioned unwraps that
		// fail with KeyDisabled come back here through kek.OutcomeOf.
		if a.inUse == nil {
			return false
		}
		a.sealReason = cmkd.ReasonDisabled
	default:
		return false
	}
	a.detail = err
	return true
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

// maxSetAside bounds the sentinels one check sets aside per version.
const maxSetAside = 10

// verifyVersion proves Key Vault unwraps under kid with one of its DEKs;
// a sentinel Key Vault refuses as malformed is set aside (and reported)
// and the next one tried, so one corrupted DEK cannot keep its key from
// being checked.
// It returns how many it set aside.
func (r *Reconciler) verifyVersion(ctx context.Context, kid cmkd.KeyID) (int, error) {
	for n := range maxSetAside {
		err := r.store.VerifyVersion(ctx, kid)
		var ue *store.UnwrapError
		if !unreadableSentinel(err) || !errors.As(err, &ue) {
			return n, err
		}
		req := Request{Key: kid.Versionless(), Cause: "probe"}
		if err := r.setAside(ctx, req, ue.DEK, "key vault cannot unwrap it"); err != nil {
			return n, err
		}
	}
	return maxSetAside, r.store.VerifyVersion(ctx, kid)
}
