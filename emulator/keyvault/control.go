package keyvault

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"time"
)

type accessReq struct {
	Revoked *bool `json:"revoked"`
}

type throttleReq struct {
	Limit      int   `json:"limit"`
	WindowMS   int64 `json:"window_ms"`
	RetryAfter bool  `json:"retry_after"`
}

type faultsReq struct {
	LatencyMS int64    `json:"latency_ms"`
	JitterMS  int64    `json:"jitter_ms"`
	ErrorRate float64  `json:"error_rate"`
	DropRate  float64  `json:"drop_rate"`
	Methods   []string `json:"methods,omitempty"`
}

// control serves /_emulator/: test knobs reachable from other processes.
// It is never challenged, throttled, faulted or counted.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	if s.cfg.Token != "" {
		tok, ok := bearer(r)
		if !ok || subtle.ConstantTimeCompare([]byte(tok), []byte(s.cfg.Token)) != 1 {
			writeError(w, http.StatusUnauthorized, "Unauthorized", "The control API needs the emulator's bearer token.", "")
			return
		}
	}
	switch r.Method + " " + r.URL.Path {
	case "GET /_emulator/calls":
		writeJSON(w, http.StatusOK, s.Calls())
	case "GET /_emulator/calls/keys":
		writeJSON(w, http.StatusOK, s.KeyCalls())
	case "POST /_emulator/calls/reset":
		s.ResetCalls()
		w.WriteHeader(http.StatusNoContent)
	case "POST /_emulator/access":
		s.controlAccess(w, r)
	case "POST /_emulator/throttle":
		var req throttleReq
		if decodeControl(w, r, &req) {
			s.SetThrottle(req.Limit, time.Duration(req.WindowMS)*time.Millisecond, req.RetryAfter)
			w.WriteHeader(http.StatusNoContent)
		}
	case "GET /_emulator/softdelete", "POST /_emulator/softdelete":
		s.controlSoftDelete(w, r)
	case "POST /_emulator/faults":
		s.controlFaults(w, r)
	default:
		writeError(w, http.StatusNotFound, "NotFound", "Unknown emulator control endpoint.", "")
	}
}

func (s *Server) controlAccess(w http.ResponseWriter, r *http.Request) {
	var req accessReq
	if !decodeControl(w, r, &req) {
		return
	}
	if req.Revoked == nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "Property revoked is required.", "")
		return
	}
	if *req.Revoked {
		s.Revoke()
	} else {
		s.Grant()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) controlFaults(w http.ResponseWriter, r *http.Request) {
	var req faultsReq
	if !decodeControl(w, r, &req) {
		return
	}
	f := Faults{
		Latency: time.Duration(req.LatencyMS) * time.Millisecond, Jitter: time.Duration(req.JitterMS) * time.Millisecond,
		ErrorRate: req.ErrorRate, DropRate: req.DropRate, Methods: req.Methods,
	}
	if !f.valid() {
		writeError(w, http.StatusBadRequest, "BadParameter", "Latencies must be >= 0 and rates within [0, 1].", "")
		return
	}
	s.SetFaults(f)
	w.WriteHeader(http.StatusNoContent)
}

func decodeControl(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 64<<10))
	if err == nil {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, "BadParameter", "The request body is not valid JSON for this endpoint.", "")
		return false
	}
	return true
}
