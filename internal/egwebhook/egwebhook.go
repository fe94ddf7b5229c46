// Package egwebhook holds what every receiver of Event Grid push deliveries
// needs: the two subscription handshakes. cmkd has two such receivers, the
// event source (events/webhook) and the status tail (events/status).
package egwebhook

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
)

// ValidationEventType is the Event Grid schema's handshake event.
const ValidationEventType = "Microsoft.EventGrid.SubscriptionValidationEvent"

// ValidationCode finds the Event Grid schema subscription validation
// event, delivered alone, and returns its code.
func ValidationCode(body []byte) (string, bool) {
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return "", false
	}
	if t[0] == '{' {
		t = append(append([]byte{'['}, t...), ']')
	}
	// encoding/json matches member names case-insensitively.
	var evs []struct {
		EventType string
		Data      struct{ ValidationCode string }
	}
	if json.Unmarshal(t, &evs) != nil || len(evs) != 1 || !strings.EqualFold(evs[0].EventType, ValidationEventType) {
		return "", false
	}
	return evs[0].Data.ValidationCode, evs[0].Data.ValidationCode != ""
}

// AnswerValidation writes the handshake's answer for code.
func AnswerValidation(w http.ResponseWriter, code string) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"validationResponse": code})
}

// AllowOrigin answers the CloudEvents webhook abuse-protection handshake
// (an OPTIONS request naming its origin) and reports whether it did; when
// the origin is missing it writes nothing and the caller answers 400.
func AllowOrigin(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("WebHook-Request-Origin")
	if origin == "" {
		return false
	}
	w.Header().Set("WebHook-Allowed-Origin", origin)
	w.Header().Set("WebHook-Allowed-Rate", "*")
	w.Header().Set("Allow", "POST, OPTIONS")
	w.WriteHeader(http.StatusOK)
	return true
}
