package eventgridtopic

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"mime"
	"strconv"
	"strings"
	"time"
)

// Content types of the publish API.
const (
	ctCloudEventsBatch = "application/cloudevents-batch+json"
	ctCloudEvent       = "application/cloudevents+json"
	ctJSON             = "application/json"
)

// limits are the size checks and topic identity a decode applies.
type limits struct {
	maxEvent int
	topicID  string // resource ID stamped into Event Grid schema events
	schema   Schema // "" accepts both
}

// decodePublish parses a publish body of the given content type into
// validated events, or says why the service would refuse it.
func decodePublish(contentType string, body []byte, lim limits) ([]Event, *wireError) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, badRequest("Content-Type %q is not supported", contentType)
	}
	var (
		schema Schema
		elems  []json.RawMessage
	)
	switch strings.ToLower(mt) {
	case ctCloudEventsBatch:
		schema = SchemaCloudEvents
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, badRequest("The request body is not a JSON array of CloudEvents: %v", err)
		}
	case ctCloudEvent:
		schema = SchemaCloudEvents
		elems = []json.RawMessage{json.RawMessage(bytes.TrimSpace(body))}
		if !json.Valid(elems[0]) {
			return nil, badRequest("The request body is not valid JSON")
		}
	case ctJSON:
		schema = SchemaEventGrid
		if err := json.Unmarshal(body, &elems); err != nil {
			return nil, badRequest("The request body is not a JSON array of Event Grid events: %v", err)
		}
	default:
		return nil, badRequest("Content-Type %q is not supported", contentType)
	}
	if lim.schema != "" && schema != lim.schema {
		return nil, badRequest("The topic's input schema is %s; the request is in %s", lim.schema, schema)
	}
	evs := make([]Event, 0, len(elems))
	for i, el := range elems {
		if len(el) > lim.maxEvent {
			return nil, badRequest("Event %d is %d bytes, over the %d byte limit for one event", i, len(el), lim.maxEvent)
		}
		var (
			ev   Event
			werr *wireError
		)
		if schema == SchemaCloudEvents {
			ev, werr = decodeCloudEvent(el)
		} else {
			ev, werr = decodeEventGridEvent(el, lim.topicID)
		}
		if werr != nil {
			werr.message = "Event " + strconv.Itoa(i) + ": " + werr.message
			return nil, werr
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// attrs reads a JSON object's members; non-objects are refused.
func attrs(el json.RawMessage) (map[string]json.RawMessage, *wireError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(el, &m); err != nil || m == nil {
		return nil, badRequest("The event is not a JSON object")
	}
	return m, nil
}

// str reads an optional string member; present but not a string is refused.
func str(m map[string]json.RawMessage, name string) (string, *wireError) {
	raw, ok := m[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badRequest("The '%s' attribute must be a string", name)
	}
	return s, nil
}

// required reads string members that must be present and non-empty.
func required(m map[string]json.RawMessage, names ...string) ([]string, *wireError) {
	out := make([]string, len(names))
	for i, n := range names {
		s, werr := str(m, n)
		if werr != nil {
			return nil, werr
		}
		if s == "" {
			return nil, badRequest("Required property '%s' was not set", n)
		}
		out[i] = s
	}
	return out, nil
}

func parseTime(m map[string]json.RawMessage, name string) (time.Time, *wireError) {
	s, werr := str(m, name)
	if werr != nil || s == "" {
		return time.Time{}, werr
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("The '%s' attribute %q is not an RFC 3339 time", name, s)
	}
	return t, nil
}

func decodeCloudEvent(el json.RawMessage) (Event, *wireError) {
	m, werr := attrs(el)
	if werr != nil {
		return Event{}, werr
	}
	req, werr := required(m, "specversion", "id", "source", "type")
	if werr != nil {
		return Event{}, werr
	}
	if req[0] != "1.0" {
		return Event{}, badRequest("The 'specversion' attribute %q is not supported; want 1.0", req[0])
	}
	ev := Event{ID: req[1], Source: req[2], Type: req[3], Schema: SchemaCloudEvents}
	if ev.Subject, werr = str(m, "subject"); werr != nil {
		return Event{}, werr
	}
	if ev.Time, werr = parseTime(m, "time"); werr != nil {
		return Event{}, werr
	}
	if _, werr = str(m, "datacontenttype"); werr != nil {
		return Event{}, werr
	}
	if ev.DataBase64, werr = str(m, "data_base64"); werr != nil {
		return Event{}, werr
	}
	if d, ok := m["data"]; ok {
		if _, both := m["data_base64"]; both {
			return Event{}, badRequest("An event must not have both 'data' and 'data_base64'")
		}
		ev.Data = compact(d)
	}
	if ev.DataBase64 != "" {
		if _, err := base64.StdEncoding.DecodeString(ev.DataBase64); err != nil {
			return Event{}, badRequest("The 'data_base64' attribute is not base64")
		}
	}
	ev.Raw = compact(el)
	return ev, nil
}

func decodeEventGridEvent(el json.RawMessage, topicID string) (Event, *wireError) {
	m, werr := attrs(el)
	if werr != nil {
		return Event{}, werr
	}
	req, werr := required(m, "id", "eventType", "subject", "eventTime")
	if werr != nil {
		return Event{}, werr
	}
	ev := Event{ID: req[0], Type: req[1], Subject: req[2], Schema: SchemaEventGrid}
	if ev.Time, werr = parseTime(m, "eventTime"); werr != nil {
		return Event{}, werr
	}
	if ev.DataVersion, werr = str(m, "dataVersion"); werr != nil {
		return Event{}, werr
	}
	topic, werr := str(m, "topic")
	if werr != nil {
		return Event{}, werr
	}
	if topic != "" && !strings.EqualFold(topic, topicID) {
		return Event{}, badRequest("The 'topic' property %q does not match the topic %q", topic, topicID)
	}
	if mv, werr := str(m, "metadataVersion"); werr != nil {
		return Event{}, werr
	} else if mv != "" && mv != "1" {
		return Event{}, badRequest("The 'metadataVersion' property %q is not supported; want 1", mv)
	}
	if d, ok := m["data"]; ok {
		ev.Data = compact(d)
	}
	ev.Source = topicID
	m["topic"], _ = json.Marshal(topicID)
	m["metadataVersion"] = json.RawMessage(`"1"`)
	raw, err := json.Marshal(m)
	if err != nil {
		return Event{}, badRequest("The event cannot be encoded: %v", err)
	}
	ev.Raw = raw
	return ev, nil
}

// compact removes insignificant space; the input is known valid JSON.
func compact(b []byte) json.RawMessage {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return append(json.RawMessage(nil), b...)
	}
	return buf.Bytes()
}
