package keyvault

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// readOnly operations change nothing worth saving.
var readOnly = map[string]bool{
	"getKey": true, "listKeys": true, "listVersions": true, "getDeletedKey": true, "listDeletedKeys": true,
	"getRotationPolicy": true, "wrapKey": true, "unwrapKey": true, "encrypt": true, "decrypt": true,
	"sign": true, "verify": true, "backupKey": true, "getRandomBytes": true, "release": true,
}

// Key Vault api-versions the emulator answers; azkeys v1.5 sends the first.
var apiVersions = map[string]bool{"2025-07-01": true, "7.6": true, "7.5": true, "7.4": true}

// ServeHTTP lets the emulator be mounted on another server or driven by
// httptest; Start serves it over TLS itself.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.serve(w, r) }

// serve runs the steps of a real vault request in the order the service
// does them: the challenge before anything reads the body, then faults,
// api-version, throttling, routing, RBAC, and the operation.
func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_emulator/") {
		s.control(w, r)
		return
	}
	setHeaders(w, newRequestID())
	if !s.authorize(w, r) || s.injectFault(w, r) {
		return
	}
	api := r.URL.Query().Get("api-version")
	if !apiVersions[api] {
		writeError(w, http.StatusBadRequest, "BadParameter", "The specified version ("+api+
			") is not recognized. Consider using the latest supported version (2025-07-01).", "")
		return
	}
	if !s.admit(w) {
		return
	}
	rt, aerr := route(r.Method, r.URL.Path)
	if aerr != nil {
		writeAPIError(w, aerr)
		return
	}
	s.calls.inc(rt.op)
	if rt.name != "" {
		s.keyCalls.inc(strings.ToLower(rt.name) + " " + rt.op)
	}
	if s.revoked.Load() {
		writeAPIError(w, rbacDenied(rt.op, s.cfg.VaultName))
		return
	}
	s.run(w, r, rt, view{base: s.url, api: api, sd: s.softDelete(), hsm: s.cfg.ManagedHSM})
}

func (s *Server) run(w http.ResponseWriter, r *http.Request, rt routed, vw view) {
	r.Body = http.MaxBytesReader(w, r.Body, DefaultMaxBody)
	c := &call{r: r, vw: vw, name: rt.name, ver: rt.ver, now: s.cfg.Now().Unix()}
	body, err := rt.fn(s, c)
	if err != nil {
		var aerr *apiError
		if !errors.As(err, &aerr) {
			s.log.Error("keyvault emulator operation", slog.String("op", rt.op), slog.Any("err", err))
			aerr = &apiError{status: http.StatusInternalServerError, code: "InternalServerError", msg: "An unexpected error occurred."}
		}
		writeAPIError(w, aerr)
		return
	}
	if !readOnly[rt.op] {
		s.persist()
	}
	// Events go out before the answer, so a caller that got the answer
	// can rely on the sink having seen them.
	s.emit(c.events)
	if body == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

func writeAPIError(w http.ResponseWriter, e *apiError) {
	if e.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.retryAfter))
	}
	writeError(w, e.status, e.code, e.msg, e.inner)
}

// authorize answers the bearer challenge. It must not touch the body:
// azkeys sends its first request with the body removed.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) bool {
	token, ok := bearer(r)
	msg := "AKV10000: Request is missing a Bearer or PoP token."
	if ok && (s.cfg.Token == "" || subtle.ConstantTimeCompare([]byte(token), []byte(s.cfg.Token)) == 1) {
		return true
	}
	if ok {
		msg = "AKV10032: Invalid issuer. The token was not issued for this vault's tenant."
	}
	s.calls.inc("challenge")
	s.challenge(w, msg)
	return false
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", false
	}
	return strings.TrimSpace(token), true
}

func (s *Server) admit(w http.ResponseWriter) bool {
	ok, retryAfter := s.throttle.take(time.Now())
	if ok {
		return true
	}
	s.calls.inc("throttled")
	writeAPIError(w, throttled(retryAfter))
	return false
}

func rbacDenied(op, vaultName string) *apiError {
	return forbidden("Caller is not authorized to perform action on resource.\r\n"+
		"If role assignments, deny assignments or role definitions were changed recently, please observe propagation time.\r\n"+
		"Action: 'Microsoft.KeyVault/vaults/keys/"+op+"'\r\n"+
		"Resource: '/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/emulator/providers/microsoft.keyvault/vaults/"+
		strings.ToLower(vaultName)+"/keys'\r\nAssignment: (not found)\r\nDecisionReason: null\r\n", "ForbiddenByRbac")
}

func newRequestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
