package keyvault

import (
	"net/http"
	"sync"
	"time"
)

// Managed HSM throttling: Azure limits a Managed HSM per second and per
// kind of operation (Managed HSM service limits), not per 10 s like a
// vault. The general budget of Config.ThrottleLimit defaults to
// DefaultHSMThrottleLimit per DefaultHSMThrottleWindow; on top of it,
// the kinds below have their own budgets per second.
const (
	DefaultHSMThrottleLimit  = 9000 // the largest per-kind figure, so it never binds before one
	DefaultHSMThrottleWindow = time.Second
	// HSMAESKeyWrapLimit is wrapKey plus unwrapKey with AES (oct-HSM) keys,
	// per second.
	HSMAESKeyWrapLimit = 9000
	// HSMRSA2048UnwrapLimit is unwrapKey with RSA-2048 keys, per second.
	// RSA wrapKey needs only the public key, which clients use locally.
	HSMRSA2048UnwrapLimit = 1100
)

// Operation kinds with their own Managed HSM budget.
const (
	kindAESKeyWrap    = "aes-keywrap"
	kindRSA2048Unwrap = "rsa2048-unwrap"
)

// hsmKind names the budget an operation on a key draws from, if any.
func hsmKind(op string, m *material) string {
	switch {
	case m.oct != nil && (op == "wrapKey" || op == "unwrapKey"):
		return kindAESKeyWrap
	case m.rsa != nil && m.rsa.N.BitLen() == 2048 && op == "unwrapKey":
		return kindRSA2048Unwrap
	}
	return ""
}

// kindThrottle holds one fixed one-second window per operation kind.
type kindThrottle struct {
	mu     sync.Mutex
	limits map[string]int
	by     map[string]*throttle
}

func newKindThrottle() *kindThrottle {
	return &kindThrottle{
		limits: map[string]int{kindAESKeyWrap: HSMAESKeyWrapLimit, kindRSA2048Unwrap: HSMRSA2048UnwrapLimit},
		by:     map[string]*throttle{},
	}
}

// take spends one operation of kind; it answers as throttle.take.
func (k *kindThrottle) take(kind string, now time.Time, retryAfter bool) (bool, int) {
	k.mu.Lock()
	t := k.by[kind]
	if t == nil {
		t = newThrottle(k.limits[kind], DefaultHSMThrottleWindow, retryAfter)
		k.by[kind] = t
	}
	k.mu.Unlock()
	t.mu.Lock()
	t.retryAfter = retryAfter
	t.mu.Unlock()
	return t.take(now)
}

// admitKind charges a Managed HSM operation to its kind's budget. It is
// off with the general throttle, so that ThrottleLimit < 0 turns all
// throttling off.
func (s *Server) admitKind(op string, m *material) error {
	kind := hsmKind(op, m)
	if !s.cfg.ManagedHSM || kind == "" {
		return nil
	}
	s.throttle.mu.Lock()
	off, retry := s.throttle.limit < 0, s.throttle.retryAfter
	s.throttle.mu.Unlock()
	if off {
		return nil
	}
	ok, retryAfter := s.kinds.take(kind, time.Now(), retry)
	if ok {
		return nil
	}
	s.calls.inc("throttled")
	return throttled(retryAfter)
}

func throttled(retryAfter int) *apiError {
	return &apiError{status: http.StatusTooManyRequests, code: "Throttled", retryAfter: retryAfter,
		msg: "Request was not allowed because the caller exceeded a throttling limit. Reason: VaultRequestTypeLimitReached"}
}
