package eventgridtopic

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmkd-io/cmkd/emulator/internal/loopbackca"
)

// apiPath is the topic's publish path.
const apiPath = "/api/events"

// drainLimit bounds how much of a refused body is read so that the client
// sees the answer instead of a reset connection.
const drainLimit = 8 << 20

// Server is a running emulated topic.
type Server struct {
	cfg     Config
	certs   *loopbackca.Certs
	sasKey  []byte
	topicID string
	origin  string // https://host:port
	ln      net.Listener
	srv     *http.Server
	failing atomic.Int64
	posts   atomic.Int64 // publish requests, refused ones included

	mu        sync.Mutex
	published []Event
	changed   chan struct{} // closed and replaced whenever published grows
	subs      map[string]*subscription
	closed    bool

	ctx       context.Context // cancelled by Close: stops deliveries
	cancel    context.CancelFunc
	wg        sync.WaitGroup // one per subscription's delivery loop
	closeOnce sync.Once
}

// Start listens on cfg.Addr and serves HTTPS until Close.
func Start(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("eventgrid topic emulator config: %w", err)
	}
	certs, err := loopbackca.New("eventgrid topic emulator CA", nil, nil)
	if err != nil {
		return nil, err
	}
	if cfg.CAFile != "" {
		if err := certs.WriteCA(cfg.CAFile); err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", cfg.Addr, err)
	}
	s := &Server{
		cfg:     cfg,
		certs:   certs,
		sasKey:  decodeKey(cfg.Key),
		topicID: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator/providers/Microsoft.EventGrid/topics/" + cfg.Name,
		origin:  "https://" + ln.Addr().String(),
		ln:      ln,
		changed: make(chan struct{}),
		subs:    map[string]*subscription{},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.srv = &http.Server{
		Handler:           s,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{certs.Leaf}, MinVersion: tls.VersionTLS12},
		ErrorLog:          slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelDebug),
	}
	go func() { _ = s.srv.ServeTLS(ln, "", "") }()
	return s, nil
}

// URL is the topic endpoint to give to azeventgrid clients:
// https://127.0.0.1:port/api/events.
func (s *Server) URL() string { return s.origin + apiPath }

// TopicID is the resource ID stamped into Event Grid schema events.
func (s *Server) TopicID() string { return s.topicID }

// CAPool trusts the server's certificate.
func (s *Server) CAPool() *x509.CertPool { return s.certs.Pool.Clone() }

// CAPEM is the CA certificate in PEM form.
func (s *Server) CAPEM() []byte { return append([]byte(nil), s.certs.CAPEM...) }

// SetFailing makes every publish over HTTP answer status, after
// authentication, so that a sender's retries can be tested; 0 restores
// normal service.
func (s *Server) SetFailing(status int) { s.failing.Store(int64(status)) }

// PublishRequests counts the publish requests the topic answered, refused
// ones included, so that a sender's retries can be counted.
func (s *Server) PublishRequests() int { return int(s.posts.Load()) }

// Close stops the server and the deliveries, cutting short requests in
// flight, and returns when every delivery goroutine has ended.
func (s *Server) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		subs := make([]*subscription, 0, len(s.subs))
		for _, sub := range s.subs {
			subs = append(subs, sub)
		}
		s.mu.Unlock()
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err = s.srv.Shutdown(ctx); err != nil {
			err = s.srv.Close()
		}
		s.wg.Wait()
		for _, sub := range subs {
			sub.cfg.HTTPClient.CloseIdleConnections()
		}
	})
	return err
}

// Published returns every accepted event, oldest first.
func (s *Server) Published() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.published...)
}

// WaitPublished waits until at least n events were accepted and returns
// them all, or returns ctx's error.
func (s *Server) WaitPublished(ctx context.Context, n int) ([]Event, error) {
	for {
		s.mu.Lock()
		evs, changed := append([]Event(nil), s.published...), s.changed
		s.mu.Unlock()
		if len(evs) >= n {
			return evs, nil
		}
		select {
		case <-ctx.Done():
			return evs, fmt.Errorf("%d of %d events published: %w", len(evs), n, ctx.Err())
		case <-changed:
		}
	}
}

// Publish accepts events from the same process, validated as a CloudEvents
// publish over HTTP would be (SetFailing does not apply). A sink of the Key
// Vault emulator can call it with CloudEvent(ev).
func (s *Server) Publish(evs ...CloudEvent) error {
	body, err := json.Marshal(evs)
	if err != nil {
		return fmt.Errorf("encode events: %w", err)
	}
	accepted, werr := decodePublish(ctCloudEventsBatch, body, s.limits())
	if werr != nil {
		return fmt.Errorf("publish to %s: %w", s.cfg.Name, werr)
	}
	s.accept(accepted)
	return nil
}

func (s *Server) limits() limits {
	return limits{maxEvent: s.cfg.MaxEventBytes, topicID: s.topicID, schema: s.cfg.Schema}
}

// accept stores events and wakes waiters.
func (s *Server) accept(evs []Event) {
	now := time.Now().UTC()
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range evs {
		evs[i].PublishTime = now
	}
	s.published = append(s.published, evs...)
	s.enqueue(evs)
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, controlPrefix) {
		s.control(w, r)
		return
	}
	status := http.StatusOK
	if werr := s.serve(r); werr != nil {
		status = werr.status
		_, _ = io.Copy(io.Discard, io.LimitReader(r.Body, drainLimit))
		writeError(w, werr)
	} else {
		w.Header().Set("Content-Length", "0")
		w.WriteHeader(http.StatusOK)
	}
	s.cfg.Logger.Debug("eventgrid topic request", slog.String("method", r.Method),
		slog.String("path", r.URL.Path), slog.Int("status", status))
}

// serve handles a publish; nil means it was accepted.
func (s *Server) serve(r *http.Request) *wireError {
	if strings.TrimSuffix(r.URL.Path, "/") != apiPath {
		return &wireError{http.StatusNotFound, codeNotFound, "The resource '" + r.URL.Path + "' is not found"}
	}
	if r.Method != http.MethodPost {
		return &wireError{http.StatusMethodNotAllowed, "MethodNotAllowed", "The method " + r.Method + " is not allowed"}
	}
	s.posts.Add(1)
	if r.URL.Query().Get("api-version") == "" {
		return badRequest("The api-version query parameter is required")
	}
	if werr := s.authorize(r, time.Now()); werr != nil {
		return werr
	}
	if st := s.failing.Load(); st != 0 {
		return statusError(int(st))
	}
	limit := int64(s.cfg.MaxRequestBytes)
	if r.ContentLength > limit {
		return tooLarge(limit)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return badRequest("The request body cannot be read")
	}
	if int64(len(body)) > limit {
		return tooLarge(limit)
	}
	evs, werr := decodePublish(r.Header.Get("Content-Type"), body, s.limits())
	if werr != nil {
		return werr
	}
	s.accept(evs)
	return nil
}

func tooLarge(limit int64) *wireError {
	return &wireError{http.StatusRequestEntityTooLarge, codeRequestEntityTooLarge,
		fmt.Sprintf("The request body is over the %d byte limit", limit)}
}
