package status

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd/store"
)

// Wire constants of a status event.
const (
	// TypePrefix prefixes a status kind to make a CloudEvent type.
	TypePrefix = "io.cmkd."
	// ContentType is the Content-Type header of a structured-mode CloudEvent.
	ContentType = "application/cloudevents+json"
	// MaxEventBytes bounds a status document a reader accepts.
	MaxEventBytes = 64 << 10
)

// Subject is the NATS subject of a status event. Callers pass a valid
// tenant id and kind; Encode checks them.
func Subject(tenant, kind string) string { return "cmkd.status." + tenant + "." + kind }

// Event is a status event as published: a CloudEvents 1.0 document.
type Event struct {
	SpecVersion     string         `json:"specversion"`
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"`
	Subject         string         `json:"subject"`
	Time            time.Time      `json:"time"`
	DataContentType string         `json:"datacontenttype"`
	Data            map[string]any `json:"data"`
	// Seq is the stream sequence, set by readers; not part of the document.
	Seq uint64 `json:"-"`
}

// Kind is the status kind: Type without its prefix.
func (e Event) Kind() string { return strings.TrimPrefix(e.Type, TypePrefix) }

// Tenant is the tenant the event is about: the CloudEvent subject.
func (e Event) Tenant() string { return e.Subject }

// Encode renders a store event as the CloudEvent cmkd publishes. The tenant
// and kind become subject tokens, so they are checked here.
func Encode(instance string, ev store.StatusEvent) ([]byte, error) {
	if err := checkNames(ev.ID, ev.Tenant, ev.Kind); err != nil {
		return nil, err
	}
	b, err := json.Marshal(Event{
		SpecVersion: "1.0", ID: ev.ID, Source: "cmkd/" + instance, Type: TypePrefix + ev.Kind,
		Subject: ev.Tenant, Time: ev.Time.UTC(), DataContentType: "application/json", Data: ev.Data,
	})
	if err != nil {
		return nil, fmt.Errorf("encode status event %s: %w", ev.ID, err)
	}
	return b, nil
}

// Decode parses a status document and checks what readers rely on: a
// CloudEvents 1.0 id, a cmkd type and a tenant that is a valid tenant id.
func Decode(b []byte) (Event, error) {
	if len(b) > MaxEventBytes {
		return Event{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidEvent, len(b), MaxEventBytes)
	}
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	if e.SpecVersion != "1.0" {
		return Event{}, fmt.Errorf("%w %q: specversion %q, want 1.0", ErrInvalidEvent, e.ID, e.SpecVersion)
	}
	if !strings.HasPrefix(e.Type, TypePrefix) {
		return Event{}, fmt.Errorf("%w %q: type %q is not %s<kind>", ErrInvalidEvent, e.ID, e.Type, TypePrefix)
	}
	if err := checkNames(e.ID, e.Subject, e.Kind()); err != nil {
		return Event{}, err
	}
	return e, nil
}

func checkNames(id, tenant, kind string) error {
	switch {
	case id == "":
		return fmt.Errorf("%w: id is empty", ErrInvalidEvent)
	case store.ValidateTenantID(tenant) != nil:
		return fmt.Errorf("%w %q: tenant %q is not [A-Za-z0-9_-]{1,64}", ErrInvalidEvent, id, tenant)
	case !validKind(kind):
		return fmt.Errorf("%w %q: kind %q is not dot-separated [A-Za-z0-9_-] tokens", ErrInvalidEvent, id, kind)
	}
	return nil
}

// validKind accepts kinds such as "sealed" and "rewrap.started": subject
// tokens joined by single dots, with no wildcards or spaces.
func validKind(kind string) bool {
	if kind == "" || len(kind) > 128 {
		return false
	}
	for tok := range strings.SplitSeq(kind, ".") {
		if store.ValidateTenantID(tok) != nil {
			return false
		}
	}
	return true
}
