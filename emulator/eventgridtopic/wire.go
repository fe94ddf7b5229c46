package eventgridtopic

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Error codes the topic answers with.
const (
	codeBadRequest            = "BadRequest"
	codeUnauthorized          = "Unauthorized"
	codeNotFound              = "NotFound"
	codeRequestEntityTooLarge = "RequestEntityTooLarge"
)

// wireError is a refusal answered with a status and the service's error
// body.
type wireError struct {
	status  int
	code    string
	message string
}

func (e *wireError) Error() string { return e.code + ": " + e.message }

func badRequest(format string, a ...any) *wireError {
	return &wireError{http.StatusBadRequest, codeBadRequest, fmt.Sprintf(format, a...)}
}

// statusError is the refusal SetFailing makes: the status with a code named
// after its text, as the service names its codes ("ServiceUnavailable").
func statusError(status int) *wireError {
	code := strings.ReplaceAll(http.StatusText(status), " ", "")
	if code == "" {
		code = "Status" + strconv.Itoa(status)
	}
	return &wireError{status, code, "The topic is failing on purpose with status " + strconv.Itoa(status)}
}

// writeError answers like the service: {"error":{"code","message"}}, the
// message ending with a tracking reference as the service's do.
func writeError(w http.ResponseWriter, e *wireError) {
	body := map[string]any{"error": map[string]string{
		"code":    e.code,
		"message": e.message + ". Report '" + newGUID() + "' to our forums for assistance or raise a support ticket.",
	}}
	writeJSON(w, e.status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
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
