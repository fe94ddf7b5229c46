package status

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Defaults for Config.
const (
	DefaultStream     = "CMKD_STATUS"
	DefaultMaxAge     = 90 * 24 * time.Hour
	DefaultDuplicates = 10 * time.Minute
	DefaultBatch      = 100
	DefaultClaim      = 30 * time.Second
	DefaultInterval   = 500 * time.Millisecond
	DefaultBackoff    = 250 * time.Millisecond
	maxBackoff        = 10 * time.Second
)

// StreamConfig is the CMKD_STATUS stream cmkd creates when allowed to:
// file storage, subjects cmkd.status.>, events kept MaxAge, and a duplicate
// window longer than an outbox claim, so a publish retried after a crash is
// dropped by JetStream.
func StreamConfig(name string, maxAge, duplicates time.Duration, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: name, Subjects: []string{"cmkd.status.>"}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, MaxAge: maxAge, Duplicates: duplicates, Replicas: max(replicas, 1),
		Description: "cmkd status events (CloudEvents 1.0) for audit",
	}
}

// EnsureStream creates or updates the status stream.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Stream, error) {
	cfg.setDefaults()
	s, err := js.CreateOrUpdateStream(ctx, StreamConfig(cfg.Stream, cfg.MaxAge, cfg.Duplicates, cfg.Replicas))
	if err != nil {
		return nil, fmt.Errorf("create stream %s: %w", cfg.Stream, err)
	}
	return s, nil
}
