package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"

	"github.com/cmkd-io/cmkd/config"
	natsdef "github.com/cmkd-io/cmkd/deploy/nats"
	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/eventgrid"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/events/webhook"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/internal/failpoint"
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

// serveWorker runs the worker described by cfg until ctx ends. The worker
// is built first; it runs the sources, each with its own middleware-wrapped
// handler, and the relay.
func serveWorker(ctx context.Context, cfg *Config, log *slog.Logger) error {
	d, err := openDeps(ctx, cfg, log, true)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := checkStreams(ctx, d); err != nil {
		return err
	}
	relay, err := newRelay(d)
	if err != nil {
		return err
	}
	egRelay, err := newEventGridRelay(ctx, d)
	if err != nil {
		return err
	}
	// The Reconciler tells the relays when it wrote status events.
	var kicks []func()
	var runners []worker.Runner
	if relay != nil {
		kicks, runners = append(kicks, relay.Kick), append(runners, relay)
	}
	if egRelay != nil {
		kicks, runners = append(kicks, egRelay.Kick), append(runners, egRelay)
	}
	kick := func() {
		for _, k := range kicks {
			k()
		}
	}
	if cfg.API.Listen != "" {
		srv, err := newAPIServer(cfg.API, d.store, d.reg, log)
		if err != nil {
			return err
		}
		runners = append(runners, srv)
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
	sources, err := buildSources(d)
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{
		Store: d.store, Reconciler: rec, Limits: d.kek, Instance: cfg.Instance,
		ProbeInterval: cfg.Worker.ProbeInterval, ProbeBudget: cfg.Worker.ProbeBudget,
		Concurrency: cfg.Worker.Concurrency, VaultRewraps: cfg.Worker.VaultRewraps,
		EventMinInterval: cfg.Worker.EventMinInterval, LeaseTTL: cfg.Worker.LeaseTTL,
		Sources: sources, Runners: runners, NATS: d.nc, HTTPAddr: cfg.HTTP.Listen,
		HTTPMaxConns: cfg.HTTP.MaxConns,
		Registerer:   d.reg, Gatherer: d.reg, Logger: log,
	})
	if err != nil {
		return err
	}
	log.Info("cmkd worker starting", slog.String("instance", cfg.Instance), slog.Int("sources", len(sources)))
	if p := failpoint.Armed(); p != "" {
		log.Warn("a chaos kill point is armed: this process will kill itself there", slog.String("point", p))
	}
	return w.Run(ctx)
}

// checkStreams verifies, with nats.check_streams, that the streams cmkd
// uses exist as deploy/nats defines them: where an operator owns them, a
// missing or different stream is found at start, not as lost events.
func checkStreams(ctx context.Context, d *deps) error {
	if !d.cfg.NATS.CheckStreams || d.js == nil {
		return nil
	}
	queue := d.cfg.Sources.Queue.Enabled || d.cfg.Sources.Webhook.Enqueue
	if err := natsdef.Check(ctx, d.js, queue); err != nil {
		return fmt.Errorf("nats.check_streams: %w", err)
	}
	d.log.Info("nats streams checked", slog.Bool("queue", queue))
	return nil
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

// newEventGridRelay makes the Event Grid status relay (status.eventgrid),
// or nil when none is configured. The sink is registered in the outbox
// before the worker writes anything, so that every status event from this
// start on is published to the topic too.
func newEventGridRelay(ctx context.Context, d *deps) (*status.EventGridRelay, error) {
	client, err := config.StatusEventGridClient(d.cfg)
	if err != nil || client == nil {
		return nil, err
	}
	cfg := status.EventGridConfig{Instance: d.cfg.Instance, Logger: d.log.With("sink", "eventgrid"), Registerer: d.reg}
	relay, err := status.NewEventGridRelay(d.store, client, cfg)
	if err != nil {
		return nil, fmt.Errorf("status.eventgrid: %w", err)
	}
	if err := d.store.RegisterOutboxSink(ctx, status.DefaultEventGridSink); err != nil {
		return nil, fmt.Errorf("status.eventgrid: %w", err)
	}
	d.log.Info("status events go to Event Grid too", slog.String("topic", d.cfg.Status.EventGrid.Endpoint))
	return relay, nil
}

// buildSources makes every configured event source.
func buildSources(d *deps) ([]events.Source, error) {
	cfg := d.cfg
	dec := events.NewDecoder(events.DecoderConfig{AllowedVaults: cfg.KeyVault.Vaults, Registerer: d.reg})
	var srcs []events.Source
	if eg := cfg.Sources.EventGrid; eg.Endpoint != "" {
		pool, err := loadCA(eg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("sources.eventgrid.ca_file: %w", err)
		}
		egc := eventgrid.Config{
			Endpoint: eg.Endpoint, Topic: eg.Topic, Subscription: eg.Subscription, Key: eg.Key, RootCAs: pool,
			Decoder: dec, Logger: d.log.With("source", "eventgrid"), Registerer: d.reg,
		}
		if eg.Key == "" {
			egc.Credential = d.cred // the same Microsoft Entra identity as for Key Vault
		}
		src, err := eventgrid.New(egc)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, src)
	}
	if cfg.Sources.Queue.Enabled {
		src, err := natsq.New(d.js, natsq.Config{
			Durable: cfg.Sources.Queue.Durable, AckWait: cfg.Sources.Queue.AckWait, CreateStream: cfg.NATS.CreateStreams,
			Decoder: dec, Logger: d.log.With("source", "queue"), Registerer: d.reg,
		})
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, src)
	}
	if wh := cfg.Sources.Webhook; wh.Listen != "" {
		src, err := webhookSource(d, dec)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, src)
	}
	return srcs, nil
}

func webhookSource(d *deps, dec *events.Decoder) (*webhook.Source, error) {
	src, err := webhook.New(webhookConfig(d, dec))
	if err != nil {
		return nil, fmt.Errorf("sources.webhook: %w", err)
	}
	return src, nil
}

// webhookConfig maps sources.webhook onto the webhook's own config.
func webhookConfig(d *deps, dec *events.Decoder) webhook.Config {
	wh := d.cfg.Sources.Webhook
	wc := webhook.Config{
		Listen: wh.Listen, Path: wh.Path, MaxConns: wh.MaxConns,
		Auth:    webhook.Auth{SharedSecret: wh.SharedSecret},
		Decoder: dec, Logger: d.log.With("source", "webhook"), Registerer: d.reg,
	}
	if wh.Audience != "" {
		wc.Auth.Entra = &webhook.EntraAuth{
			Audience: wh.Audience, Issuer: wh.Issuer, JWKSURL: wh.JWKSURL,
			AllowedApplications: wh.AllowedApplications,
		}
	}
	if wh.Enqueue {
		wc.Enqueue = func(ctx context.Context, body []byte) error { return natsq.Enqueue(ctx, d.js, "", body) }
	}
	return wc
}
