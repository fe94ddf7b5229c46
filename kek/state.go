package kek

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cmkd-io/cmkd"
)

// Outcome is what a probe concluded about a key version.
type Outcome string

// Outcomes of a probe.
const (
	Usable       Outcome = "usable"
	Disabled     Outcome = "disabled"
	Expired      Outcome = "expired"
	NotYetValid  Outcome = "not_yet_valid"
	Deleted      Outcome = "deleted" // soft-deleted, recoverable
	Purged       Outcome = "purged"  // missing entirely
	AccessDenied Outcome = "access_denied"
	Unreachable  Outcome = "unreachable" // timeout, 5xx, DNS, TLS, refused
	Throttled    Outcome = "throttled"
)

// KeyState is one probe's view of a key version.
type KeyState struct {
	Key                cmkd.KeyID // Version is the version probed (the latest for a versionless probe)
	Kty                string
	Enabled            bool
	NotBefore, Expires time.Time // zero when unset
	Ops                []string
	Outcome            Outcome
	Err                error // the classified error behind a non-usable outcome, nil when usable
	ProbedAt           time.Time
}

// OutcomeOf says what a failed Key Vault call (a probe, wrap or unwrap)
// tells about the key: the outcome a probe would report. It is the one
// classification of Key Vault's answers; callers do not re-classify. It is
// "" when err says nothing about the key: a request Key Vault refused as
// malformed, an ended context, or an error that is not kek's.
func OutcomeOf(err error) Outcome {
	switch {
	case errors.Is(err, ErrDisabled):
		return Disabled
	case errors.Is(err, ErrAccessDenied), errors.Is(err, ErrOperationForbidden):
		return AccessDenied
	case errors.Is(err, ErrThrottled):
		return Throttled
	case errors.Is(err, ErrExpired):
		return Expired
	case errors.Is(err, ErrNotYetValid):
		return NotYetValid
	case errors.Is(err, ErrNotFound):
		return Purged
	case errors.Is(err, ErrUnavailable):
		return Unreachable
	}
	return ""
}

// outcomeOfProbe is the outcome of a failed GET: what OutcomeOf says, and
// unreachable for an answer that made no sense.
func outcomeOfProbe(ke *Error) Outcome {
	if o := OutcomeOf(ke); o != "" {
		return o
	}
	return Unreachable
}

// Transient reports outcomes that say nothing new about the key itself:
// Key Vault could not be asked.
func (o Outcome) Transient() bool { return o == Unreachable || o == Throttled }

// judge sets Outcome and Err from the attributes read at now.
func (s *KeyState) judge(now time.Time) {
	var kind error
	switch {
	case !s.Enabled:
		s.Outcome, kind = Disabled, ErrDisabled
	case !s.NotBefore.IsZero() && now.Before(s.NotBefore):
		s.Outcome, kind = NotYetValid, ErrNotYetValid
	case !s.Expires.IsZero() && !now.Before(s.Expires):
		s.Outcome, kind = Expired, ErrExpired
	default:
		s.Outcome, s.Err = Usable, nil
		return
	}
	s.Err = fmt.Errorf("probe %s: %w", s.Key, kind)
}

// CanWrap says whether a new DEK may be wrapped under this version at now:
// it probed usable, is still inside its validity window, and its key_ops
// allow wrapKey and unwrapKey. The error says why not.
func (s *KeyState) CanWrap(now time.Time) error {
	if s.Outcome != Usable {
		if s.Err != nil {
			return s.Err
		}
		return errors.New("key not usable")
	}
	t := *s
	t.judge(now) // the validity window may have closed since the probe
	if t.Outcome != Usable {
		return t.Err
	}
	if !slices.Contains(s.Ops, "wrapKey") || !slices.Contains(s.Ops, "unwrapKey") {
		return fmt.Errorf("key_ops of %s lack wrapKey or unwrapKey: %w", s.Key, ErrOperationForbidden)
	}
	return nil
}
