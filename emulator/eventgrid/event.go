package eventgrid

import (
	"encoding/json"
	"time"
)

// CloudEvent is a structured-mode CloudEvents 1.0 event as the emulator
// accepts it in-process; Data is any JSON value and is required. Its fields
// match the Key Vault emulator's CloudEvent, so a sink can convert one with
// eventgrid.CloudEvent(ev). Binary data is only accepted on the wire
// (data_base64); a dead letter of such an event has it in Raw only.
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

// DeadLetter is an event the subscription gave up on.
type DeadLetter struct {
	Event CloudEvent
	// Raw is the event as it was stored, extensions included.
	Raw json.RawMessage
	// Reason is "Rejected" or "MaxDeliveryCountExceeded".
	Reason        string
	DeliveryCount int
	At            time.Time
}

// Dead-letter reasons.
const (
	ReasonRejected         = "Rejected"
	ReasonMaxDeliveryCount = "MaxDeliveryCountExceeded"
)

func cloudEventOf(raw json.RawMessage) CloudEvent {
	var ev CloudEvent
	_ = json.Unmarshal(raw, &ev)
	return ev
}
