package eventgridtopic

import (
	"encoding/json"
	"time"
)

// CloudEvent is a CloudEvents 1.0 event in JSON form, field for field the
// event the Key Vault emulator hands to its sink, so a sink can convert
// with CloudEvent(ev).
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Subject         string          `json:"subject,omitempty"`
	Type            string          `json:"type"`
	Time            time.Time       `json:"time,omitzero"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

// Event is an event the topic accepted, in either input schema.
type Event struct {
	// ID, Type, Source and Subject are the CloudEvents attributes, or for
	// the Event Grid schema id, eventType, topic and subject.
	ID, Type, Source, Subject string
	// Time is time or eventTime; zero when a CloudEvent has none.
	Time time.Time
	// DataVersion is the Event Grid schema's dataVersion.
	DataVersion string
	// Data is the data member as JSON; nil when absent. A CloudEvent's
	// data_base64 is kept in DataBase64 instead.
	Data       json.RawMessage
	DataBase64 string
	// Schema is the schema the event was published in.
	Schema Schema
	// Raw is the event as stored, extensions included; for the Event Grid
	// schema with topic and metadataVersion filled in as the service does.
	Raw json.RawMessage
	// PublishTime is when the topic accepted the event.
	PublishTime time.Time
}
