package status

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd/store"
)

// TypePrefix prefixes a status kind to make a CloudEvent type.
const TypePrefix = "io.cmkd."

// Subject is the NATS subject of a status event.
func Subject(tenant, kind string) string { return "cmkd.status." + tenant + "." + kind }

// Event is a status event as published.
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

// Encode renders a store event as the CloudEvent cmkd publishes.
func Encode(instance string, ev store.StatusEvent) ([]byte, error) {
	return json.Marshal(Event{
		SpecVersion: "1.0", ID: ev.ID, Source: "cmkd/" + instance, Type: TypePrefix + ev.Kind,
		Subject: ev.Tenant, Time: ev.Time.UTC(), DataContentType: "application/json", Data: ev.Data,
	})
}

// MaxEventBytes bounds a status document a reader accepts.
const MaxEventBytes = 64 << 10

// Decode parses a status document, checking what readers rely on.
func Decode(b []byte) (Event, error) {
	if len(b) > MaxEventBytes {
		return Event{}, fmt.Errorf("status event of %d bytes exceeds %d", len(b), MaxEventBytes)
	}
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return Event{}, fmt.Errorf("status event: %w", err)
	}
	switch {
	case e.SpecVersion != "1.0":
		return Event{}, fmt.Errorf("status event %q: specversion %q, want 1.0", e.ID, e.SpecVersion)
	case e.ID == "":
		return Event{}, errors.New("status event: id is empty")
	case !strings.HasPrefix(e.Type, TypePrefix):
		return Event{}, fmt.Errorf("status event %q: type %q is not %s*", e.ID, e.Type, TypePrefix)
	case e.Subject == "":
		return Event{}, fmt.Errorf("status event %q: subject (tenant) is empty", e.ID)
	}
	return e, nil
}
