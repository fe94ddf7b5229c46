package eventgrid

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Request limits. Azure caps a publish at 1 MB; settle bodies are small.
const (
	maxPublishBody = 1 << 20
	maxSettleBody  = 1 << 20
	maxLockTokens  = 1000
)

// decodePublish turns a publish body into normalised CloudEvents, one JSON
// object each. A batch is a JSON array, a single event an object; the content
// type is not trusted to say which.
func decodePublish(body []byte) ([]json.RawMessage, *wireError) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, badRequest("request body is empty")
	}
	var raws []json.RawMessage
	if body[0] == '[' {
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, badRequest("invalid JSON: %v", err)
		}
		if len(raws) == 0 {
			return nil, badRequest("batch must contain at least one event")
		}
	} else {
		raws = []json.RawMessage{body}
	}
	out := make([]json.RawMessage, 0, len(raws))
	for _, raw := range raws {
		ev, werr := normaliseEvent(raw)
		if werr != nil {
			return nil, werr
		}
		out = append(out, ev)
	}
	return out, nil
}

// normaliseEvent validates one structured-mode CloudEvent the way the service
// does and converts its time to UTC, as the service returns it.
func normaliseEvent(raw json.RawMessage) (json.RawMessage, *wireError) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil || m == nil {
		return nil, badRequest("event must be a JSON object")
	}
	_, hasData := m["data"]
	_, hasB64 := m["data_base64"]
	switch {
	case !hasData && !hasB64:
		return nil, badRequest("'data' attribute is required")
	case hasData && hasB64:
		return nil, badRequest("'data' and 'data_base64' are mutually exclusive")
	}
	for _, name := range []string{"id", "source", "type"} {
		if s, ok := stringAttr(m, name); !ok || s == "" {
			return nil, badRequest("`%s` must be non-empty string", name)
		}
	}
	if s, ok := stringAttr(m, "specversion"); !ok || s != "1.0" {
		return nil, badRequest("`specversion` must be \"1.0\"")
	}
	if werr := checkOptional(m); werr != nil {
		return nil, werr
	}
	if hasB64 {
		if s, ok := stringAttr(m, "data_base64"); !ok || !isBase64(s) {
			return nil, badRequest("`data_base64` must be a base64 string")
		}
	}
	out, err := json.Marshal(m)
	if err != nil {
		return nil, badRequest("invalid event: %v", err)
	}
	return out, nil
}

func checkOptional(m map[string]json.RawMessage) *wireError {
	for _, name := range []string{"subject", "datacontenttype", "dataschema"} {
		if _, present := m[name]; !present {
			continue
		}
		if _, ok := stringAttr(m, name); !ok {
			return badRequest("`%s` must be a string", name)
		}
	}
	if _, present := m["time"]; !present {
		return nil
	}
	s, ok := stringAttr(m, "time")
	if !ok {
		return badRequest("`time` must be a string")
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return badRequest("`time` must be an RFC 3339 timestamp")
	}
	m["time"], _ = json.Marshal(t.UTC().Format(time.RFC3339Nano))
	return nil
}

func stringAttr(m map[string]json.RawMessage, name string) (string, bool) {
	raw, ok := m[name]
	if !ok {
		return "", false
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", false
	}
	return s, true
}

func isBase64(s string) bool {
	_, err := base64.StdEncoding.DecodeString(s)
	return err == nil
}

// decodeLockTokens reads a settle body, {"lockTokens":[...]}.
func decodeLockTokens(body []byte) ([]string, *wireError) {
	var req struct {
		LockTokens []string `json:"lockTokens"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badRequest("invalid JSON: %v", err)
	}
	switch {
	case len(req.LockTokens) == 0:
		return nil, &wireError{400, codeArgumentInvalid, "lockTokens must contain at least one token"}
	case len(req.LockTokens) > maxLockTokens:
		return nil, &wireError{400, codeArgumentInvalid, "too many lockTokens"}
	}
	return req.LockTokens, nil
}

// receiveParams reads maxEvents (1..100, default 1) and maxWaitTime (10..120
// s, default 60). Unparsable numbers are BadRequest, as the service's parser
// answers; parsable but out of range ones are ArgumentInvalid.
func receiveParams(q url.Values) (maxEvents int, maxWait time.Duration, werr *wireError) {
	maxEvents, werr = uintParam(q, "maxEvents", 1, 1, 100)
	if werr != nil {
		return 0, 0, werr
	}
	secs, werr := uintParam(q, "maxWaitTime", 60, 10, 120)
	if werr != nil {
		return 0, 0, werr
	}
	return maxEvents, time.Duration(secs) * time.Second, nil
}

func uintParam(q url.Values, name string, def, lo, hi int) (int, *wireError) {
	s := q.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, badRequest("Error parsing query parameters: invalid digit found in string")
	}
	if int(n) < lo || int(n) > hi {
		return 0, argInvalid(name)
	}
	return int(n), nil
}

// releaseDelay reads releaseDelayInSeconds, one of 0, 10, 60, 600, 3600.
func releaseDelay(q url.Values) (time.Duration, *wireError) {
	s := q.Get("releaseDelayInSeconds")
	switch strings.TrimSpace(s) {
	case "", "0":
		return 0, nil
	case "10":
		return 10 * time.Second, nil
	case "60":
		return time.Minute, nil
	case "600":
		return 10 * time.Minute, nil
	case "3600":
		return time.Hour, nil
	}
	return 0, argInvalid("releaseDelayInSeconds")
}
