package keyvault

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// serviceVersion is what a 2025 vault reports in x-ms-keyvault-service-version.
const serviceVersion = "1.9.2455.1"

// kvError is the error body Key Vault answers with.
type kvError struct {
	Code       string     `json:"code"`
	Message    string     `json:"message"`
	InnerError *innerCode `json:"innererror,omitempty"`
}

type innerCode struct {
	Code string `json:"code"`
}

// setHeaders writes the headers every vault response carries.
// region is the location the emulated vault answers from.
const region = "emulator"

func setHeaders(w http.ResponseWriter, requestID string) {
	h := w.Header()
	h.Set("Cache-Control", "no-cache")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "-1")
	h.Set("Strict-Transport-Security", "max-age=31536000;includeSubDomains")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("x-ms-keyvault-region", region)
	h.Set("x-ms-keyvault-service-version", serviceVersion)
	h.Set("x-ms-keyvault-network-info", "conn_type=Ipv4;addr=127.0.0.1;act_addr_fam=InterNetwork;")
	h.Set("x-ms-request-id", requestID)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own types are marshalled; this is a programming error.
		panic(fmt.Sprintf("marshal response: %v", err))
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func writeError(w http.ResponseWriter, status int, code, msg, inner string) {
	e := kvError{Code: code, Message: msg}
	if inner != "" {
		e.InnerError = &innerCode{Code: inner}
	}
	writeJSON(w, status, map[string]kvError{"error": e})
}

// apiError is a Key Vault error answer an operation returns.
type apiError struct {
	status           int
	code, msg, inner string
}

func (e *apiError) Error() string { return e.code + ": " + e.msg }

func badParameter(format string, args ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, code: "BadParameter", msg: fmt.Sprintf(format, args...)}
}

func keyNotFound(nameOrID string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "KeyNotFound", msg: "A key with (name/id) " + nameOrID +
		" was not found in this key vault. If you recently deleted this key you may be able to recover it using the correct recovery command. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"}
}

func deletedKeyNotFound(name string) *apiError {
	return &apiError{status: http.StatusNotFound, code: "KeyNotFound", msg: "Deleted Key not found: " + name}
}

func forbidden(msg, inner string) *apiError {
	return &apiError{status: http.StatusForbidden, code: "Forbidden", msg: msg, inner: inner}
}

func deletedConflict(name string) *apiError {
	return &apiError{status: http.StatusConflict, code: "Conflict", inner: "ObjectIsDeletedButRecoverable",
		msg: "Key " + name + " is currently in a deleted but recoverable state, and its name cannot be reused; in this state, the key can only be recovered or purged."}
}

// restoreConflict is the answer Key Vault gave (recorded in azkeys'
// TestBackupRestore) to a restore whose name was still taken.
func restoreConflict(kid string) *apiError {
	return &apiError{status: http.StatusConflict, code: "Conflict", msg: "There was a conflict restoring the key '" + kid +
		"'. This can happen if either: a second key with the same name was created after the first key was deleted; thus trying to restore a key whose name is already in use. To fix this, rename the second key to something else so that the restore works. The second probable cause of this exception is when multiple operations are performed in parallel against the key. To avoid this error, perform operations against a key in a sequential manner."}
}

// badBackup answers a blob that does not open under this vault's backup
// key: tampered with, cut short, or sealed by an unrelated emulator.
func badBackup() *apiError {
	return badParameter("Cannot decrypt backup blob.")
}

// b64 is how Key Vault writes bytes: base64url without padding.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// unb64 accepts base64url with or without padding, as the service does.
func unb64(field, s string) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err != nil {
		return nil, badParameter("Property %s has invalid value.", field)
	}
	return b, nil
}
