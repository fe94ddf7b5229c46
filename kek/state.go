package kek

import (
	"errors"
	"fmt"
	"slices"
	"time"
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
	Key                KeyID // Version is the version probed (the latest for a versionless probe)
	Kty                string
	Enabled            bool
	NotBefore, Expires time.Time // zero when unset
	Ops                []string
	Outcome            Outcome
	Err                error // the classified error behind a non-usable outcome, nil when usable
	ProbedAt           time.Time
}

// outcomeOf maps the kind of a failed GET to an outcome.
func outcomeOf(kind error) Outcome {
	switch kind {
	case ErrDisabled:
		return Disabled
	case ErrAccessDenied, ErrOperationForbidden:
		return AccessDenied
	case ErrThrottled:
		return Throttled
	case ErrExpired:
		return Expired
	case ErrNotYetValid:
		return NotYetValid
	case ErrNotFound:
		return Purged
	default:
		return Unreachable
	}
}

// transient reports outcomes that say nothing new about the key itself.
func (o Outcome) transient() bool { return o == Unreachable || o == Throttled }

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

// wrappable says whether a new DEK may be wrapped under this version at now.
func (s *KeyState) wrappable(now time.Time) error {
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
