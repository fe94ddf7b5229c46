package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
)

// Event deliveries `cmkd dev --events` wires Key Vault to cmkd with.
const (
	eventsPull    = "pull"    // an Event Grid namespace topic; cmkd receives
	eventsWebhook = "webhook" // an Event Grid system topic pushes to cmkd's webhook
)

// Names of the emulated topics and of cmkd's push subscription.
const (
	devSystemTopic  = "keyvault-events"
	devStatusTopic  = "cmkd-status"
	devWebhookPath  = "/events"
	devPushSubName  = "cmkd-webhook"
	devDeadLetters  = "dead-letters"
	devStatusCAFile = "eventgrid-status-ca.pem"
)

// parseRetrySchedule reads --push-retry: waits after each failed delivery,
// comma-separated; empty is Event Grid's own schedule.
func parseRetrySchedule(s string) ([]time.Duration, error) {
	if s == "" {
		return nil, nil
	}
	var out []time.Duration
	for _, f := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < 0 {
			return nil, fmt.Errorf("--push-retry %q: want durations like 10s,30s,1m", s)
		}
		out = append(out, d)
	}
	return out, nil
}

// startSystemTopic starts the emulated Key Vault system topic that pushes
// to cmkd's webhook, and picks the webhook's address and secret (the same
// as last time over the same directory).
func (e *devEnv) startSystemTopic(f devFlags, prev *Config, log *slog.Logger) error {
	topic, err := eventgridtopic.Start(eventgridtopic.Config{
		Addr: addrOf(prev, func(c *Config) string { return c.Dev.SystemTopic }), Name: devSystemTopic,
		CAFile:        filepath.Join(f.dir, "eventgrid-topic-ca.pem"),
		DeadLetterDir: filepath.Join(f.dir, devDeadLetters),
		Logger:        log.With("emulator", "eventgrid-topic", "topic", devSystemTopic),
	})
	if err != nil {
		return fmt.Errorf("start event grid system topic emulator: %w (another cmkd dev on %s? stop it or use --data)", err, f.dir)
	}
	e.systemTopic = topic
	e.webhook = addrOf(prev, func(c *Config) string { return c.Sources.Webhook.Listen })
	if e.webhook == "127.0.0.1:0" {
		if e.webhook, err = freeAddr(); err != nil {
			return err
		}
	}
	if prev != nil && prev.Sources.Webhook.SharedSecret != "" {
		e.secret = prev.Sources.Webhook.SharedSecret
	} else {
		e.secret = randomHex(16)
	}
	return nil
}

// startStatusTopic starts the emulated Event Grid topic the status sink
// publishes to (`cmkd dev --status-eventgrid`).
func (e *devEnv) startStatusTopic(f devFlags, prev *Config, log *slog.Logger) error {
	topic, err := eventgridtopic.Start(eventgridtopic.Config{
		Addr: addrOf(prev, func(c *Config) string { return c.Status.EventGrid.Endpoint }), Name: devStatusTopic,
		Key: devEGKey, AcceptBearer: true, CAFile: filepath.Join(f.dir, devStatusCAFile),
		DeadLetterDir: filepath.Join(f.dir, devDeadLetters),
		Logger:        log.With("emulator", "eventgrid-topic", "topic", devStatusTopic),
	})
	if err != nil {
		return fmt.Errorf("start event grid status topic emulator: %w", err)
	}
	e.statusTopic = topic
	return nil
}

// sink is where the emulated vaults raise their events: the system topic
// with --events webhook, the namespace topic otherwise.
func (e *devEnv) sink(log *slog.Logger) func(keyvault.CloudEvent) {
	if e.systemTopic == nil {
		return forwardTo(e.eg, devTopic, log)
	}
	return func(ev keyvault.CloudEvent) {
		err := e.systemTopic.Publish(eventgridtopic.CloudEvent{
			SpecVersion: ev.SpecVersion, ID: ev.ID, Source: ev.Source, Subject: ev.Subject, Type: ev.Type,
			Time: ev.Time, DataContentType: ev.DataContentType, Data: ev.Data,
		})
		if err != nil {
			log.Error("publish key vault event to the system topic", "type", ev.Type, "id", ev.ID, "err", err)
		}
	}
}

// subscribeWebhook creates the system topic's subscription to cmkd's
// webhook once the worker serves it: Event Grid validates a webhook when
// the subscription is created (here, the Event Grid schema's
// SubscriptionValidationEvent), so it must be answering by then.
func (e *devEnv) subscribeWebhook(ctx context.Context, f devFlags, log *slog.Logger) {
	cfg := eventgridtopic.SubscriptionConfig{
		Name:                devPushSubName,
		Endpoint:            "http://" + e.webhook + devWebhookPath + "?code=" + e.secret,
		Schema:              eventgridtopic.SchemaEventGrid,
		MaxDeliveryAttempts: f.pushAttempts,
		RetrySchedule:       f.pushRetry,
	}
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for deadline := time.Now().Add(time.Minute); ; {
		err := e.systemTopic.Subscribe(cfg)
		if err == nil {
			log.Info("event grid subscription created: the webhook answered the validation handshake",
				slog.String("topic", devSystemTopic), slog.String("subscription", devPushSubName))
			return
		}
		if time.Now().After(deadline) {
			// The endpoint in the error carries the webhook's secret.
			msg := strings.ReplaceAll(err.Error(), e.secret, "REDACTED")
			log.Error("event grid subscription to the webhook failed: key vault events will not reach cmkd", slog.String("err", msg))
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
