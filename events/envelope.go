package events

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// envelope is one event's metadata, whichever schema delivered it.
type envelope struct {
	id, typ, subject string
	time             time.Time
	data             json.RawMessage
	cloudEvent       bool
}

// parseEnvelope reads one event in Event Grid schema or CloudEvents 1.0
// structured mode, telling them apart by "specversion" and "eventType".
func parseEnvelope(raw []byte) (envelope, error) {
	f, err := foldObject(raw)
	if err != nil {
		return envelope{}, err
	}
	switch {
	case f.has("specversion"):
		return parseCloudEvent(f)
	case f.has("eventtype"):
		return parseEventGridEvent(f)
	}
	return envelope{}, fmt.Errorf("neither a CloudEvent (no specversion) nor an Event Grid event (no eventType)")
}

func parseCloudEvent(f fields) (envelope, error) {
	env := envelope{cloudEvent: true}
	sv, err := f.str("specversion")
	if err != nil {
		return env, err
	}
	if sv != "1.0" {
		return env, fmt.Errorf("field \"specversion\": %q, want \"1.0\"", sv)
	}
	if _, err := f.required("source"); err != nil {
		return env, err
	}
	if env.id, err = f.required("id"); err != nil {
		return env, err
	}
	if env.typ, err = f.required("type"); err != nil {
		return env, err
	}
	if env.subject, err = f.str("subject"); err != nil {
		return env, err
	}
	if env.time, err = timeField(f, "time"); err != nil {
		return env, err
	}
	env.data, err = cloudEventData(f)
	return env, err
}

// cloudEventData returns "data", or "data_base64" decoded: a CloudEvent
// re-encoded from an SDK type may carry JSON data in base64.
func cloudEventData(f fields) (json.RawMessage, error) {
	if !f.has("data_base64") {
		return f["data"], nil
	}
	if f.has("data") {
		return nil, fmt.Errorf("both \"data\" and \"data_base64\" are set")
	}
	s, err := f.str("data_base64")
	if err != nil {
		return nil, err
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("field \"data_base64\": not base64")
	}
	return b, nil
}

func parseEventGridEvent(f fields) (envelope, error) {
	var env envelope
	var err error
	if env.id, err = f.required("id"); err != nil {
		return env, err
	}
	if env.typ, err = f.required("eventtype"); err != nil {
		return env, err
	}
	if env.subject, err = f.str("subject"); err != nil {
		return env, err
	}
	if env.time, err = timeField(f, "eventtime"); err != nil {
		return env, err
	}
	env.data = f["data"]
	return env, nil
}

// timeField parses an RFC 3339 time; Azure sometimes omits the zone, which
// then means UTC.
func timeField(f fields, name string) (time.Time, error) {
	s, err := f.str(name)
	if err != nil || s == "" {
		return time.Time{}, err
	}
	if t, err := time.Parse(time.RFC3339Nano, strings.ToUpper(s)); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02T15:04:05.999999999", strings.ToUpper(s)); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("field %q: %q is not an RFC 3339 time", name, s)
}
