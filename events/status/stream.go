package status

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
)

// StreamConfig is the status stream cmkd creates when allowed to: file
// storage, subjects cmkd.status.>, events kept maxAge, and a duplicate
// window longer than an outbox claim, so a publish retried after a crash or
// a lost ack is dropped by JetStream.
func StreamConfig(name string, maxAge, duplicates time.Duration, replicas int) jetstream.StreamConfig {
	return jetstream.StreamConfig{
		Name: name, Subjects: []string{cmkd.StatusSubjects}, Storage: jetstream.FileStorage,
		Retention: jetstream.LimitsPolicy, MaxAge: maxAge, Duplicates: duplicates, Replicas: max(replicas, 1),
		Description: "cmkd status events (CloudEvents 1.0) for audit",
	}
}

// EnsureStream creates the status stream, or updates it to cfg; calling it
// again changes nothing.
func EnsureStream(ctx context.Context, js jetstream.JetStream, cfg Config) (jetstream.Stream, error) {
	cfg.setDefaults()
	s, err := js.CreateOrUpdateStream(ctx, StreamConfig(cfg.Stream, cfg.MaxAge, cfg.Duplicates, cfg.Replicas))
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", cfg.Stream, err)
	}
	return s, nil
}
