package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/eventgrid"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/events/webhook"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/worker"
)

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("run", "run [--config FILE] [--log json|text]", stderr)
	cfgFlag := fs.String("config", "", "config file (default $CMKD_CONFIG, else cmkd-data/cmkd.yaml)")
	logFormat := fs.String("log", "json", "log format: json or text")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("run takes no arguments, got %q", fs.Args())
	}
	log, err := newLogger(stderr, *logFormat)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(configPath(*cfgFlag))
	if err != nil {
		return err
	}
	return serveWorker(ctx, cfg, log)
}

func newLogger(w io.Writer, format string) (*slog.Logger, error) {
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, nil)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, nil)), nil
	}
	return nil, usagef("--log %q: want json or text", format)
}

// serveWorker runs the worker described by cfg until ctx ends.
func serveWorker(ctx context.Context, cfg *Config, log *slog.Logger) error {
	d, err := openDeps(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer d.Close()
	relay, err := newRelay(d)
	if err != nil {
		return err
	}
	var kick func() // the Reconciler tells the relay when it wrote status events
	if relay != nil {
		kick = relay.Kick
	}
	rec, err := handlers.New(handlers.Config{
		Store: d.store, KEK: d.kek, Broadcast: worker.Broadcaster(d.nc, log), StatusWritten: kick,
		UnreachableGrace: cfg.Worker.UnreachableGrace, SealOnExpiry: cfg.Worker.SealOnExpiry,
		RewrapConcurrency: cfg.Worker.RewrapConcurrency, SampleRate: cfg.Worker.SampleRate,
		Instance: cfg.Instance, Logger: log,
	})
	if err != nil {
		return err
	}
	var w *worker.Worker
	handle := func(ctx context.Context, ev events.Event) error { return w.Handle(ctx, ev) }
	runners, err := buildRunners(ctx, d, relay, handle)
	if err != nil {
		return err
	}
	w, err = worker.New(worker.Config{
		Store: d.store, Reconciler: rec, Instance: cfg.Instance,
		ProbeInterval: cfg.Worker.ProbeInterval, Concurrency: cfg.Worker.Concurrency,
		Runners: runners, NATS: d.nc, HTTPAddr: cfg.HTTP.Listen,
		Registerer: d.reg, Gatherer: d.reg, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("cmkd worker starting", slog.String("instance", cfg.Instance), slog.Int("runners", len(runners)))
	return w.Run(ctx)
}

// newRelay makes the status relay, or nil without NATS.
func newRelay(d *deps) (*status.Relay, error) {
	if d.js == nil {
		d.log.Warn("nats.url not set: status events stay in the outbox until a relay runs")
		return nil, nil
	}
	cfg := d.cfg
	relay, err := status.NewRelay(d.store, d.js, status.Config{
		Instance: cfg.Instance, MaxAge: cfg.NATS.StatusMaxAge, CreateStream: cfg.NATS.CreateStreams,
		Logger: d.log, Registerer: d.reg,
	})
	if err != nil {
		return nil, fmt.Errorf("status relay: %w", err)
	}
	return relay, nil
}

// buildRunners makes the runners: the status relay (if any) and every
// configured event source.
func buildRunners(ctx context.Context, d *deps, relay *status.Relay, handle events.Handler) ([]worker.Runner, error) {
	cfg := d.cfg
	dec := events.NewDecoder(events.DecoderConfig{AllowedVaults: cfg.KeyVault.Vaults, Registerer: d.reg})
	var rs []worker.Runner
	if relay != nil {
		rs = append(rs, relay)
	}
	if eg := cfg.Sources.EventGrid; eg.Endpoint != "" {
		pool, err := loadCA(eg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("sources.eventgrid.ca_file: %w", err)
		}
		egc := eventgrid.Config{
			Endpoint: eg.Endpoint, Topic: eg.Topic, Subscription: eg.Subscription, Key: eg.Key, RootCAs: pool,
			Decoder: dec, Handler: handle, Logger: d.log.With("source", "eventgrid"), Registerer: d.reg,
		}
		if eg.Key == "" {
			egc.Credential = d.cred // the same Microsoft Entra identity as for Key Vault
		}
		src, err := eventgrid.New(egc)
		if err != nil {
			return nil, err
		}
		rs = append(rs, src)
	}
	if cfg.Sources.Queue.Enabled {
		src, err := natsq.New(d.js, natsq.Config{
			Durable: cfg.Sources.Queue.Durable, CreateStream: cfg.NATS.CreateStreams,
			Decoder: dec, Handler: handle, Logger: d.log.With("source", "queue"), Registerer: d.reg,
		})
		if err != nil {
			return nil, err
		}
		rs = append(rs, src)
	}
	if wh := cfg.Sources.Webhook; wh.Listen != "" {
		r, err := webhookRunner(d, dec, handle)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

func webhookRunner(d *deps, dec *events.Decoder, handle events.Handler) (worker.Runner, error) {
	wh := d.cfg.Sources.Webhook
	wc := webhook.Config{
		Path: wh.Path, Auth: webhook.Auth{SharedSecret: wh.SharedSecret},
		Decoder: dec, Logger: d.log.With("source", "webhook"), Registerer: d.reg,
	}
	if wh.Audience != "" {
		wc.Auth.Entra = &webhook.EntraAuth{Audience: wh.Audience, Issuer: wh.Issuer, JWKSURL: wh.JWKSURL}
	}
	if wh.Enqueue {
		wc.Enqueue = func(ctx context.Context, body []byte) error { return natsq.Enqueue(ctx, d.js, "", body) }
	} else {
		wc.Handler = handle
	}
	h, err := webhook.New(wc)
	if err != nil {
		return nil, fmt.Errorf("sources.webhook: %w", err)
	}
	return httpRunner{addr: wh.Listen, handler: h}, nil
}

// httpRunner serves an HTTP handler as a worker.Runner.
type httpRunner struct {
	addr    string
	handler http.Handler
}

func (h httpRunner) Run(ctx context.Context) error {
	ln, err := net.Listen("tcp", h.addr)
	if err != nil {
		return fmt.Errorf("webhook listen on %s: %w", h.addr, err)
	}
	srv := &http.Server{Handler: h.handler, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}
}
