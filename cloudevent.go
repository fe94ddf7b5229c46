package cmkd

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Wire constants of a published status event.
const (
	// StatusTypePrefix prefixes a kind to make the CloudEvent type.
	StatusTypePrefix = "io.cmkd."
	// StatusContentType is the Content-Type of a structured-mode CloudEvent.
	StatusContentType = "application/cloudevents+json"
	// MaxStatusEventBytes bounds a status document a reader accepts.
	MaxStatusEventBytes = 64 << 10
	// StatusDataSchema is the CloudEvent dataschema of the status events
	// this version writes: the version of the contract (CHANGELOG.md says
	// how it may change). Within v1 kinds and data fields are only added;
	// a change of meaning would be v2.
	StatusDataSchema = "urn:cmkd:status:v1"
)

// cloudEvent is a status event as published: CloudEvents 1.0, structured.
type cloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	DataSchema      string          `json:"dataschema,omitempty"`
	Data            json.RawMessage `json:"data"`
}

// MarshalCloudEvent renders the event as the CloudEvents 1.0 document cmkd
// publishes: type io.cmkd.<kind>, subject the tenant, source e.Source.
func (e StatusEvent) MarshalCloudEvent() ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	data, err := e.MarshalData()
	if err != nil {
		return nil, fmt.Errorf("encode status event %s: %w", e.ID, err)
	}
	b, err := json.Marshal(cloudEvent{
		SpecVersion: "1.0", ID: e.ID, Source: e.Source, Type: StatusTypePrefix + string(e.Kind),
		Subject: e.Tenant, Time: e.Time.UTC(), DataContentType: "application/json", DataSchema: StatusDataSchema, Data: data,
	})
	if err != nil {
		return nil, fmt.Errorf("encode status event %s: %w", e.ID, err)
	}
	return b, nil
}

// ParseStatusEvent reads a published status document and checks what
// readers rely on: CloudEvents 1.0 under this contract version
// (StatusDataSchema, or none), an id, a cmkd type, and a tenant that is a
// valid tenant id. Errors wrap ErrInvalidStatusEvent.
func ParseStatusEvent(b []byte) (StatusEvent, error) {
	if len(b) > MaxStatusEventBytes {
		return StatusEvent{}, fmt.Errorf("%w: %d bytes exceeds %d", ErrInvalidStatusEvent, len(b), MaxStatusEventBytes)
	}
	var ce cloudEvent
	if err := json.Unmarshal(b, &ce); err != nil {
		return StatusEvent{}, fmt.Errorf("%w: %w", ErrInvalidStatusEvent, err)
	}
	if ce.SpecVersion != "1.0" {
		return StatusEvent{}, fmt.Errorf("%w %q: specversion %q, want 1.0", ErrInvalidStatusEvent, ce.ID, ce.SpecVersion)
	}
	// A newer contract changes what kinds or fields mean: reading it as
	// this one would misreport. No dataschema is v1 as written before the
	// field existed.
	if ce.DataSchema != "" && ce.DataSchema != StatusDataSchema {
		return StatusEvent{}, fmt.Errorf("%w %q: dataschema %q, this reader knows %s",
			ErrInvalidStatusEvent, ce.ID, ce.DataSchema, StatusDataSchema)
	}
	kind, ok := strings.CutPrefix(ce.Type, StatusTypePrefix)
	if !ok {
		return StatusEvent{}, fmt.Errorf("%w %q: type %q is not %s<kind>", ErrInvalidStatusEvent, ce.ID, ce.Type, StatusTypePrefix)
	}
	e := StatusEvent{ID: ce.ID, Kind: Kind(kind), Tenant: ce.Subject, Time: ce.Time, Source: ce.Source}
	if err := e.Validate(); err != nil {
		return StatusEvent{}, err
	}
	if len(ce.Data) > 0 && string(ce.Data) != "null" {
		if err := e.UnmarshalData(ce.Data); err != nil {
			return StatusEvent{}, fmt.Errorf("%w (event %q)", err, ce.ID)
		}
	}
	return e, nil
}
