package keyvault

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"time"
)

// injectFault applies the configured faults to a vault request and
// reports whether it already answered (or dropped) it.
func (s *Server) injectFault(w http.ResponseWriter, r *http.Request) bool {
	f := s.faults.Load()
	if len(f.Methods) > 0 && !slices.Contains(f.Methods, r.Method) {
		return false
	}
	if f.DropRate > 0 && rand.Float64() < f.DropRate { // #nosec G404 -- fault injection for tests; nothing depends on it being unpredictable
		drop(w)
		return true
	}
	if d := f.Latency + jitter(f.Jitter); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return true
		case <-s.stop:
			return true
		}
	}
	if f.ErrorRate > 0 && rand.Float64() < f.ErrorRate { // #nosec G404 -- fault injection for tests; nothing depends on it being unpredictable
		if rand.IntN(2) == 0 { // #nosec G404 -- fault injection for tests; nothing depends on it being unpredictable
			writeError(w, http.StatusInternalServerError, "InternalServerError", "An unexpected error occurred while processing the request.", "")
		} else {
			writeError(w, http.StatusServiceUnavailable, "ServiceUnavailable", "The service is temporarily unavailable. Please retry later.", "")
		}
		return true
	}
	return false
}

func jitter(max time.Duration) time.Duration {
	if max <= 0 {
		return 0
	}
	return rand.N(max) // #nosec G404 -- fault injection for tests; nothing depends on it being unpredictable
}

// drop closes the connection without a byte of answer, like a load
// balancer that lost the backend.
func drop(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	panic(http.ErrAbortHandler)
}
