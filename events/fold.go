package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// fields is a JSON object whose member names are folded: lower-cased and
// trimmed. Event Grid has changed payload casing before ("Id" and "id"), and
// published Key Vault samples carry names like "ObjectName " with stray
// whitespace, so names are never compared verbatim.
type fields map[string]json.RawMessage

// foldObject parses raw as a JSON object and folds its member names. Two
// members that fold to the same name are malformed: which one wins would be
// arbitrary.
func foldObject(raw []byte) (fields, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object: null")
	}
	f := make(fields, len(m))
	for k, v := range m {
		n := strings.ToLower(strings.TrimSpace(k))
		if _, dup := f[n]; dup {
			return nil, fmt.Errorf("field %q appears twice (names are case-insensitive)", n)
		}
		f[n] = v
	}
	return f, nil
}

// has reports whether the field is present and not JSON null.
func (f fields) has(name string) bool {
	v, ok := f[name]
	return ok && !isNull(v)
}

// str returns the trimmed string value of a field; absent or null gives "".
func (f fields) str(name string) (string, error) {
	v, ok := f[name]
	if !ok || isNull(v) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", fmt.Errorf("field %q: not a string", name)
	}
	return strings.TrimSpace(s), nil
}

// required returns a non-empty string field or an error naming it.
func (f fields) required(name string) (string, error) {
	s, err := f.str(name)
	if err != nil {
		return "", err
	}
	if s == "" {
		return "", fmt.Errorf("field %q: missing", name)
	}
	return s, nil
}

func isNull(v json.RawMessage) bool {
	return bytes.Equal(bytes.TrimSpace(v), []byte("null"))
}
