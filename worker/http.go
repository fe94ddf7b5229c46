package worker

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
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
	return &httpServer{ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
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
