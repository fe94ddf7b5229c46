package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/net/netutil"

	"github.com/cmkd-io/cmkd/api"
	"github.com/cmkd-io/cmkd/store"
)

// Bounds of the data API's listener: requests carry at most api.max_body,
// so a client slower than this is stuck or hostile.
const (
	apiReadTimeout    = 30 * time.Second
	apiWriteTimeout   = 60 * time.Second
	apiIdleTimeout    = 120 * time.Second
	apiMaxHeaderBytes = 32 << 10
	apiMaxConns       = 256
)

// apiServer serves the HTTP data API (package api) on api.listen, a
// listener of its own: a flood there takes nothing from /metrics or the
// event sources. It is a worker.Runner.
type apiServer struct {
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
}

// newAPIServer binds api.listen now, so that a taken port fails the start.
func newAPIServer(c APIConfig, st *store.Store, reg prometheus.Registerer, log *slog.Logger) (*apiServer, error) {
	h, err := api.New(api.Config{Store: st, Auth: c.Auth, Anonymous: c.Anonymous, MaxBody: c.MaxBody,
		Timeout: c.Timeout, Registerer: reg, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("api: %w", err)
	}
	tlsCfg, err := apiTLS(c)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", c.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for the data API: %w (set api.listen to a free address)", c.Listen, err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	return &apiServer{ln: netutil.LimitListener(ln, apiMaxConns), log: log, srv: &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       apiReadTimeout,
		WriteTimeout:      apiWriteTimeout,
		IdleTimeout:       apiIdleTimeout,
		MaxHeaderBytes:    apiMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}, nil
}

// Run serves until ctx ends, then lets requests under way finish.
func (s *apiServer) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	s.log.Info("data API listening", slog.String("addr", s.ln.Addr().String()))
	select {
	case err := <-errc:
		return fmt.Errorf("data API: %w", err)
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return nil
	}
}

// apiTLS is the listener's TLS config: a server certificate, and client
// certificates verified against client_ca_file when one is given (the mTLS
// alternative to Entra tokens). Without cert_file the API is plain HTTP,
// for loopback and a TLS-terminating proxy in front.
func apiTLS(c APIConfig) (*tls.Config, error) {
	if c.CertFile == "" {
		if c.ClientCAFile != "" {
			return nil, errors.New("api.client_ca_file needs api.cert_file: client certificates come over TLS")
		}
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("api.cert_file / api.key_file: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if c.ClientCAFile != "" {
		pool, err := loadCA(c.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("api.client_ca_file: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.VerifyClientCertIfGiven
	}
	return cfg, nil
}
