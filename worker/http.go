package worker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// Bounds on the health and metrics server: its requests are small GETs
// and its answers small, so a client slower than this is stuck or hostile.
const (
	httpReadTimeout    = 10 * time.Second
	httpWriteTimeout   = 30 * time.Second
	httpMaxHeaderBytes = 16 << 10
)

// listen binds HTTPAddr now, so that a taken port fails Run at once.
func (w *Worker) listen() (*httpServer, error) {
	ln, err := net.Listen("tcp", w.cfg.HTTPAddr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s for /metrics: %w (set http.listen to a free address)", w.cfg.HTTPAddr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
	mux.HandleFunc("GET /readyz", w.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(w.cfg.Gatherer, promhttp.HandlerOpts{}))
	// A listener of its own, capped and dropping idle connections, so that
	// neither a flood on a source's listener nor one on this one takes the
	// descriptors the other needs.
	return &httpServer{ln: netutil.LimitListener(ln, w.cfg.HTTPMaxConns), srv: &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       httpReadTimeout,
		WriteTimeout:      httpWriteTimeout,
		IdleTimeout:       w.cfg.HTTPIdleTimeout,
		MaxHeaderBytes:    httpMaxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(w.log.Handler(), slog.LevelWarn),
	}}, nil
}

// readyz is ready once the first pass over every key has started and the
// store answers.
func (w *Worker) readyz(rw http.ResponseWriter, r *http.Request) {
	if !w.ready.Load() {
		http.Error(rw, "starting: first reconcile pass not started", http.StatusServiceUnavailable)
		return
	}
	if _, err := w.store.Tenants(r.Context()); err != nil {
		http.Error(rw, "store: "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(rw, "ready")
}

type httpServer struct {
	ln  net.Listener
	srv *http.Server
}

// Addr is the bound address (useful with port 0).
func (h *httpServer) Addr() string { return h.ln.Addr().String() }

func serve(ctx context.Context, h *httpServer) error {
	errc := make(chan error, 1)
	go func() { errc <- h.srv.Serve(h.ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := h.srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
