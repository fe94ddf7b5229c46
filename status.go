package cmkd

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Kind is what a status event reports. It is the last part of the event's
// NATS subject (cmkd.status.<tenant>.<kind>) and of its CloudEvent type
// (io.cmkd.<kind>).
type Kind string

// Status event kinds: the contract audit subscribers build on.
const (
	KindRewrapStarted      Kind = "rewrap.started"
	KindRewrapCompleted    Kind = "rewrap.completed"
	KindRewrapFailed       Kind = "rewrap.failed"
	KindVersionRetired     Kind = "version.retired"
	KindSealed             Kind = "sealed"
	KindUnsealed           Kind = "unsealed"
	KindKeyNearExpiry      Kind = "key.near_expiry"
	KindKeyExpired         Kind = "key.expired"
	KindKeyChangeStarted   Kind = "key.change.started"
	KindKeyChangeCompleted Kind = "key.change.completed"
	KindDEKUnreadable      Kind = "dek.unreadable"
	// KindTenantDestroyed: the tenant, its DEKs and its records were
	// deleted; nothing ever encrypted for it can be decrypted again.
	KindTenantDestroyed Kind = "tenant.destroyed"
)

// Kinds lists every kind cmkd publishes.
func Kinds() []Kind {
	return []Kind{
		KindRewrapStarted, KindRewrapCompleted, KindRewrapFailed, KindVersionRetired,
		KindSealed, KindUnsealed, KindKeyNearExpiry, KindKeyExpired,
		KindKeyChangeStarted, KindKeyChangeCompleted, KindDEKUnreadable,
		KindTenantDestroyed,
	}
}

// valid reports whether k is subject tokens joined by single dots: no
// wildcards, no spaces. Kinds this version does not know are valid, so that
// readers keep up with newer writers.
func (k Kind) valid() bool {
	if k == "" || len(k) > 128 {
		return false
	}
	for tok := range strings.SplitSeq(string(k), ".") {
		if !isToken(tok) {
			return false
		}
	}
	return true
}

// Seal reasons: why a tenant is sealed, as status events and
// store.SealedError carry them.
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

// PlatformReasonPrefix starts the reason of a seal caused by the platform
// layer's key, e.g. "platform_key_disabled": a tenant's own key is fine
// and the operator, not the customer, must act.
const PlatformReasonPrefix = "platform_key_"

// PlatformReason is reason for a seal caused by the platform key.
func PlatformReason(reason string) string { return PlatformReasonPrefix + reason }

// IsPlatformReason reports whether a seal reason names the platform layer.
func IsPlatformReason(reason string) bool { return strings.HasPrefix(reason, PlatformReasonPrefix) }

// purgedNote is what a seal for a purged key means for the tenant's data.
const purgedNote = "the key is purged: data under it can no longer be recovered"

// ReasonNote is a sentence for people about what a seal reason means for
// the tenant's data, for a sealed event's message or an API's error
// detail; empty when the reason needs none. A purged key — the tenant's own
// or the platform key — cannot come back, and neither can the DEKs it
// wrapped: unlike every other reason, no unseal will follow.
func ReasonNote(reason string) string {
	switch reason {
	case ReasonPurged, PlatformReason(ReasonPurged):
		return purgedNote
	}
	return ""
}

// StatusEvent is one status event: a fact about a tenant's keys that cmkd
// writes to its outbox with the state change it reports, and publishes as a
// CloudEvents 1.0 document (see MarshalCloudEvent).
type StatusEvent struct {
	// ID is unique per event and is the Nats-Msg-Id it is published with.
	// An id made from the fact (kind, tenant, version) makes writing the
	// same fact twice publish it once; the store assigns a random id when
	// it is empty.
	ID     string
	Kind   Kind
	Tenant string
	Time   time.Time
	// Source is "cmkd/<instance>" of the process that published the event;
	// set by the publisher.
	Source string
	// Key is the tenant's key, versionless; the event's vault is its Vault.
	Key KeyID
	// Version is the key version the event is about.
	Version string
	// Layer is the layer Key serves for the tenant: "platform" or
	// "customer"; empty where the event is about no one key.
	Layer string
	// PreviousKey is the customer key a key change moved from
	// (key.change.*); zero when the tenant had the platform layer alone.
	PreviousKey KeyID
	// PreviousVersion is the version DEKs were moved from
	// (rewrap.completed).
	PreviousVersion string
	// Reason is why: the seal reason (sealed), or what stopped a rewrap
	// (rewrap.failed).
	Reason string
	// PreviousReason is the seal reason an unsealed tenant had.
	PreviousReason string
	// Cause is the id of the lifecycle event that led to this one, or
	// "reconcile" for the periodic probe.
	Cause string
	// Expires is the key version's expiry (key.near_expiry, key.expired).
	Expires time.Time
	// DEKs counts the DEKs a rewrap or key change concerns; nil for kinds
	// that count none.
	DEKs *DEKCounts
}

// DEKCounts are the counts of a rewrap or key change.
type DEKCounts struct {
	// Total is the number of DEKs to move.
	Total int
	// Rewrapped is the number this run moved.
	Rewrapped int
	// Duration is how long the run took; zero while it runs.
	Duration time.Duration
}

// Vault is the vault URL of the event's key.
func (e StatusEvent) Vault() string { return e.Key.Vault }

// Subject is the NATS subject the event is published on.
func (e StatusEvent) Subject() string { return StatusSubject(e.Tenant, e.Kind) }

// StatusSubject is the NATS subject of a tenant's events of one kind; kind
// ">" matches all of them.
func StatusSubject(tenant string, kind Kind) string {
	return "cmkd.status." + tenant + "." + string(kind)
}

// StatusSubjects matches every status event.
const StatusSubjects = "cmkd.status.>"

// ErrInvalidStatusEvent marks a status event that cannot be published or
// read: a malformed document, or a tenant or kind that is not a subject
// token.
var ErrInvalidStatusEvent = errors.New("invalid status event")

// Validate checks what publishing and reading rely on: an id, and a tenant
// and kind that are subject tokens.
func (e StatusEvent) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: id is empty", ErrInvalidStatusEvent)
	case ValidateTenantID(e.Tenant) != nil:
		return fmt.Errorf("%w %q: tenant %q is not [A-Za-z0-9_-]{1,64}", ErrInvalidStatusEvent, e.ID, e.Tenant)
	case !e.Kind.valid():
		return fmt.Errorf("%w %q: kind %q is not dot-separated [A-Za-z0-9_-] tokens", ErrInvalidStatusEvent, e.ID, e.Kind)
	}
	return nil
}

// statusData is the CloudEvent "data" object. tenant, vault, key and
// version are always present; the rest only where the kind has them.
type statusData struct {
	Tenant          string     `json:"tenant"`
	Vault           string     `json:"vault"`
	Key             string     `json:"key"`
	Version         string     `json:"version"`
	Layer           string     `json:"layer,omitempty"`
	PreviousKey     string     `json:"previous_key,omitempty"`
	PreviousVersion string     `json:"previous_version,omitempty"`
	Reason          string     `json:"reason,omitempty"`
	PreviousReason  string     `json:"previous_reason,omitempty"`
	DEKsTotal       *int       `json:"deks_total,omitempty"`
	DEKsRewrapped   *int       `json:"deks_rewrapped,omitempty"`
	DurationMS      *int64     `json:"duration_ms,omitempty"`
	Expires         *time.Time `json:"expires,omitempty"`
	Cause           string     `json:"cause,omitempty"`
}

// MarshalData encodes the event's CloudEvent "data" object: what the
// outbox stores besides id, kind, tenant and time.
func (e StatusEvent) MarshalData() ([]byte, error) {
	d := statusData{
		Tenant: e.Tenant, Vault: e.Key.Vault, Key: e.Key.URL(), Version: e.Version,
		PreviousVersion: e.PreviousVersion, Reason: e.Reason, PreviousReason: e.PreviousReason, Cause: e.Cause,
		Layer: e.Layer,
	}
	if !e.PreviousKey.IsZero() {
		d.PreviousKey = e.PreviousKey.URL()
	}
	if !e.Expires.IsZero() {
		t := e.Expires.UTC()
		d.Expires = &t
	}
	if c := e.DEKs; c != nil {
		total, moved := c.Total, c.Rewrapped
		d.DEKsTotal, d.DEKsRewrapped = &total, &moved
		if c.Duration > 0 {
			ms := c.Duration.Milliseconds()
			d.DurationMS = &ms
		}
	}
	return json.Marshal(d)
}

// UnmarshalData fills in the event's fields from a "data" object. A key
// that does not parse is left zero, so that one odd event from another
// writer does not hide the rest of what a reader sees.
func (e *StatusEvent) UnmarshalData(b []byte) error {
	var d statusData
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("%w: data: %w", ErrInvalidStatusEvent, err)
	}
	switch {
	case e.Tenant == "":
		e.Tenant = d.Tenant
	case d.Tenant != "" && d.Tenant != e.Tenant:
		return fmt.Errorf("%w: data names tenant %q, not %q", ErrInvalidStatusEvent, d.Tenant, e.Tenant)
	}
	e.Key, _ = ParseKeyID(d.Key)
	e.PreviousKey, _ = ParseKeyID(d.PreviousKey)
	e.Layer = d.Layer
	e.Version, e.PreviousVersion, e.Reason, e.PreviousReason, e.Cause =
		d.Version, d.PreviousVersion, d.Reason, d.PreviousReason, d.Cause
	if d.Expires != nil {
		e.Expires = d.Expires.UTC()
	}
	if d.DEKsTotal != nil || d.DEKsRewrapped != nil || d.DurationMS != nil {
		e.DEKs = &DEKCounts{Total: deref(d.DEKsTotal), Rewrapped: deref(d.DEKsRewrapped)}
		if d.DurationMS != nil {
			e.DEKs.Duration = time.Duration(*d.DurationMS) * time.Millisecond
		}
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
