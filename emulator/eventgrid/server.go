package eventgrid

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd/emulator/internal/loopbackca"
)

// ErrNotFound is returned by in-process calls naming an unknown topic.
var ErrNotFound = errors.New("topic not found")

// Server is a running emulated namespace.
type Server struct {
	cfg   Config
	certs *loopbackca.Certs
	ln    net.Listener
	srv   *http.Server

	mu     sync.Mutex
	topics map[string]map[string]*subscription // topic → subscription name → queue

	done      chan struct{} // closed by Close so long polls return at once
	closeOnce sync.Once
}

// Start listens on cfg.Addr and serves HTTPS until Close.
func Start(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventgrid emulator config: %w", err)
	}
	c, err := loopbackca.New("eventgrid emulator CA", nil, nil)
	if err != nil {
		return nil, err
	}
	if cfg.CAFile != "" {
		if err := c.WriteCA(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	s := &Server{cfg: cfg, certs: c, topics: map[string]map[string]*subscription{}, done: make(chan struct{})}
	for topic, subs := range cfg.Topics {
		s.topics[topic] = map[string]*subscription{}
		for _, name := range subs {
			s.topics[topic][name] = newSubscription(cfg.LockDuration, cfg.MaxDeliveryCount)
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	s.ln = ln
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{c.Leaf}, MinVersion: tls.VersionTLS12},
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// URL is the namespace endpoint to give to aznamespaces clients.
func (s *Server) URL() string { return "https://" + s.ln.Addr().String() }

// CAPool trusts the server's certificate.
func (s *Server) CAPool() *x509.CertPool { return s.certs.Pool.Clone() }

// CAPEM is the CA certificate in PEM form.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.certs.CAPEM...) }

// Close ends pending long polls and stops the server.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.done)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
	})
	return err
}

// Publish adds events to every subscription of topic, validated as an HTTP
// publish would be. The Key Vault emulator's event sink uses it.
func (s *Server) Publish(topic string, evs ...CloudEvent) error {
	body, err := json.Marshal(evs)
	if err != nil {
		return fmt.Errorf("encode events: %w", err)
	}
	return s.PublishRaw(topic, body)
}

// PublishRaw publishes a JSON CloudEvent or an array of them.
func (s *Server) PublishRaw(topic string, body []byte) error {
	evs, werr := decodePublish(body)
	if werr != nil {
		return fmt.Errorf("publish to %s: %w", topic, werr)
	}
	if !s.publish(topic, evs) {
		return fmt.Errorf("publish to %s: %w", topic, ErrNotFound)
	}
	return nil
}

func (s *Server) publish(topic string, evs []json.RawMessage) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	subs, ok := s.topics[topic]
	if !ok {
		return false
	}
	for _, sub := range subs {
		for _, ev := range evs {
			sub.add(ev)
		}
	}
	return true
}

// DeadLetters returns what the subscription dead-lettered, oldest first.
func (s *Server) DeadLetters(topic, sub string) []DeadLetter {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.sub(topic, sub)
	if q == nil {
		return nil
	}
	q.sweep(s.cfg.Now())
	return append([]DeadLetter(nil), q.dead...)
}

// Pending counts the subscription's events not yet acknowledged or
// dead-lettered, locked ones included.
func (s *Server) Pending(topic, sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.sub(topic, sub)
	if q == nil {
		return 0
	}
	q.sweep(s.cfg.Now())
	return len(q.entries)
}

// Locked counts the subscription's events received and not yet settled
// whose locks have not expired: the events receivers hold now.
func (s *Server) Locked(topic, sub string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.sub(topic, sub)
	if q == nil {
		return 0
	}
	q.sweep(s.cfg.Now())
	return len(q.locked)
}

// sub looks up a queue; the caller holds mu.
func (s *Server) sub(topic, name string) *subscription {
	return s.topics[topic][name]
}
