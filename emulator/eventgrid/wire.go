package eventgrid

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// Content types the service answers with, as recorded.
const (
	ctReceive = "application/json; charset=utf-8"
	ctSettle  = "application/json"
	ctError   = "application/json; charset=utf-8"
)

// Error codes seen on the wire.
const (
	codeBadRequest      = "BadRequest"
	codeArgumentInvalid = "ArgumentInvalid"
	codeNotFound        = "NotFound"
	codeUnauthorized    = "Unauthorized"
	codeTokenLost       = "TokenLost"
	codeBadToken        = "BadToken"
)

// wireError is an operation failure answered with a status and the
// service's error body.
type wireError struct {
	status  int
	code    string
	message string
}

func (e *wireError) Error() string { return e.code + ": " + e.message }

func badRequest(format string, a ...any) *wireError {
	return &wireError{http.StatusBadRequest, codeBadRequest, fmt.Sprintf(format, a...)}
}

func argInvalid(param string) *wireError {
	return &wireError{http.StatusBadRequest, codeArgumentInvalid, "Invalid " + param + " parameter"}
}

func notFound(format string, a ...any) *wireError {
	return &wireError{http.StatusNotFound, codeNotFound, fmt.Sprintf(format, a...)}
}

// writeError answers like the service: broker-errorcode header and an
// {"error":{code,message,timestamp_utc,tracking_id}} body.
func writeError(w http.ResponseWriter, e *wireError, now time.Time) {
	body := map[string]any{"error": map[string]string{
		"code":          e.code,
		"message":       e.message,
		"timestamp_utc": now.UTC().Format("2006-01-02T15:04:05.000000000+00:00"),
		"tracking_id":   strings.ToUpper(newGUID()),
	}}
	w.Header().Set("broker-errorcode", e.code)
	writeJSON(w, e.status, ctError, body)
}

func writeJSON(w http.ResponseWriter, status int, contentType string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newGUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// receiveResult is the :receive answer.
type receiveResult struct {
	Value []receiveDetail `json:"value"`
}

type receiveDetail struct {
	BrokerProperties brokerProperties `json:"brokerProperties"`
	Event            json.RawMessage  `json:"event"`
}

type brokerProperties struct {
	LockToken     string `json:"lockToken"`
	DeliveryCount int    `json:"deliveryCount"`
}

// settleResult is the answer of every settle operation; both lists are
// always present, empty rather than omitted.
type settleResult struct {
	FailedLockTokens    []failedLockToken `json:"failedLockTokens"`
	SucceededLockTokens []string          `json:"succeededLockTokens"`
}

type failedLockToken struct {
	LockToken string    `json:"lockToken"`
	Error     tokenFail `json:"error"`
}

type tokenFail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

var (
	failTokenLost = tokenFail{codeTokenLost, "Token has expired."}
	failBadToken  = tokenFail{codeBadToken, "Cannot decode lockToken"}
)
