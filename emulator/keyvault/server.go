package keyvault

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmkd-io/cmkd/emulator/internal/loopbackca"
)

// Server is a running emulator. Its methods are safe for concurrent use.
type Server struct {
	cfg      Config
	log      *slog.Logger
	certs    *loopbackca.Certs
	url      string
	vault    *vault
	revoked  atomic.Bool
	saveMu   sync.Mutex // orders state file writes
	saveOff  bool       // set by Close, under saveMu
	throttle *throttle
	kinds    *kindThrottle // Managed HSM's per-kind budgets
	faults   atomic.Pointer[Faults]
	calls    *counters
	keyCalls *counters // "name op", for KeyCalls
	srv      *http.Server
	stop     chan struct{}
	wg       sync.WaitGroup
	closed   sync.Once
}

// Start loads or makes the TLS material, loads Config.StateFile, starts
// listening and serving, and returns once the listener is open.
func Start(cfg Config) (*Server, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	if s.cfg.StateFile != "" {
		if err := s.loadState(s.cfg.StateFile); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w (is another emulator still running there?)", s.cfg.Addr, err)
	}
	// Writing once now, after the listener proved no other emulator on this
	// address owns the file, surfaces an unwritable StateFile at Start.
	if err := s.save(); err != nil {
		return nil, errors.Join(fmt.Errorf("%w: write %s: %v", ErrBadStateFile, s.cfg.StateFile, err), ln.Close())
	}
	s.url = "https://" + ln.Addr().String()
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{s.certs.Leaf}, NextProtos: []string{"http/1.1"}},
		// HTTP/1.1 only: dropping a connection without an answer needs Hijack.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		ErrorLog:     slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	s.wg.Add(2)
	go func() {
		defer s.wg.Done()
		if err := s.srv.ServeTLS(ln, "", ""); err != nil && err != http.ErrServerClosed {
			s.log.Error("keyvault emulator serve", slog.Any("err", err))
		}
	}()
	go func() {
		defer s.wg.Done()
		s.expiryLoop()
	}()
	s.log.Info("keyvault emulator listening", slog.String("url", s.url))
	return s, nil
}

// newServer builds everything but the listener, so the handler can be
// driven directly (the fuzz test does).
func newServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	c, err := loadOrNewCerts(cfg.CAFile)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	s := &Server{
		cfg: cfg, log: cfg.Logger, certs: c, url: "https://127.0.0.1",
		vault: newVault(), calls: newCounters(), keyCalls: newCounters(), stop: make(chan struct{}),
		throttle: newThrottle(cfg.ThrottleLimit, cfg.ThrottleWindow, cfg.RetryAfter), kinds: newKindThrottle(),
	}
	s.faults.Store(&Faults{})
	return s, nil
}

// URL is the vault URL, "https://127.0.0.1:PORT" without a trailing slash.
func (s *Server) URL() string { return s.url }

// CAPool trusts the emulator's self-signed CA.
func (s *Server) CAPool() *x509.CertPool { return s.certs.Pool.Clone() }

// CAPEM is the emulator's CA certificate in PEM.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.certs.CAPEM...) }

// Close stops serving at once. Without a StateFile the vault is lost; with
// one, it was saved after every change, and Close returns only after any
// write under way is done, so a new emulator can take the file over.
func (s *Server) Close() error {
	var err error
	s.closed.Do(func() {
		close(s.stop)
		if s.srv != nil {
			err = s.srv.Close()
		}
		s.wg.Wait()
		s.stopSaving()
	})
	return err
}

// Revoke makes every Key Vault request answer 403 ForbiddenByRbac, as
// after removing the caller's role assignment.
func (s *Server) Revoke() { s.revoked.Store(true); s.persist() }

// Grant undoes Revoke.
func (s *Server) Grant() { s.revoked.Store(false); s.persist() }

// SetThrottle changes the request budget; limit < 0 turns throttling off,
// 0 means DefaultThrottleLimit and window 0 DefaultThrottleWindow (with
// Config.ManagedHSM, DefaultHSMThrottleLimit and DefaultHSMThrottleWindow).
func (s *Server) SetThrottle(limit int, window time.Duration, retryAfter bool) {
	d := Config{ManagedHSM: s.cfg.ManagedHSM}.withDefaults()
	if limit == 0 {
		limit = d.ThrottleLimit
	}
	if window <= 0 {
		window = d.ThrottleWindow
	}
	s.throttle.set(limit, window, retryAfter)
}

// SetFaults replaces the injected faults; rates are clamped to [0, 1].
func (s *Server) SetFaults(f Faults) {
	f.ErrorRate = min(max(f.ErrorRate, 0), 1)
	f.DropRate = min(max(f.DropRate, 0), 1)
	f.Latency, f.Jitter = max(f.Latency, 0), max(f.Jitter, 0)
	s.faults.Store(&f)
}

// Calls counts, per operation, the authenticated requests that reached it,
// plus "challenge" (401 answers) and "throttled" (429 answers).
func (s *Server) Calls() map[string]int64 { return s.calls.snapshot() }

// KeyCalls counts the requests Calls counts that name a key, by key name
// (lower-cased, as Key Vault compares names) and operation: what one
// tenant's key cost, in a vault that holds several.
func (s *Server) KeyCalls() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for k, n := range s.keyCalls.snapshot() {
		name, op, _ := strings.Cut(k, " ")
		if out[name] == nil {
			out[name] = map[string]int64{}
		}
		out[name][op] = n
	}
	return out
}

// ResetCalls zeroes the counters.
func (s *Server) ResetCalls() {
	s.calls.reset()
	s.keyCalls.reset()
}
