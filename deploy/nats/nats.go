// Package nats holds the JetStream streams and consumer cmkd uses, as the
// JSON files an operator applies with `nats stream add --config FILE` and
// `nats consumer add CMKD_EVENTS --config FILE`, and checks a live server
// against them. cmkd runs that check at start when nats.check_streams is
// set: the mode for streams that an operator (or NACK) owns.
//
// The files are what `nats stream info -j` prints under "config": the
// server's own format, decoded here into jetstream.StreamConfig.
package nats

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/nats-io/nats.go/jetstream"
)

// The definitions, by file.
const (
	StatusFile   = "cmkd_status.json"
	EventsFile   = "cmkd_events.json"
	DLQFile      = "cmkd_events_dlq.json"
	ConsumerFile = "cmkd_events_consumer.json"
	// EventsStream is the stream the consumer file is for.
	EventsStream = "CMKD_EVENTS"
)

//go:embed *.json
var files embed.FS

// Stream decodes one stream file strictly: a field jetstream.StreamConfig
// does not know is an error, not silently dropped.
func Stream(file string) (jetstream.StreamConfig, error) {
	var c jetstream.StreamConfig
	err := decode(file, &c)
	return c, err
}

// Consumer decodes the consumer file strictly.
func Consumer(file string) (jetstream.ConsumerConfig, error) {
	var c jetstream.ConsumerConfig
	err := decode(file, &c)
	return c, err
}

func decode(file string, v any) error {
	raw, err := files.ReadFile(file)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

// ErrIncompatible is wrapped by every check failure that is not a NATS
// error: the stream or consumer exists but cmkd cannot rely on it.
var ErrIncompatible = errors.New("incompatible")

// Check verifies that the status stream exists in a form cmkd can publish
// audit events to and, with queue, that the work-queue stream, its
// dead-letter stream and the shared consumer do too. It creates and
// changes nothing. What it checks is what cmkd relies on; the rest
// (replicas, limits, deny delete/purge) is the operator's policy.
func Check(ctx context.Context, js jetstream.JetStream, queue bool) error {
	checks := []string{StatusFile}
	if queue {
		checks = append(checks, EventsFile, DLQFile)
	}
	var errs []error
	for _, f := range checks {
		want, err := Stream(f)
		if err != nil {
			return err
		}
		errs = append(errs, CheckStream(ctx, js, want))
	}
	if queue {
		want, err := Consumer(ConsumerFile)
		if err != nil {
			return err
		}
		errs = append(errs, CheckConsumer(ctx, js, EventsStream, want))
	}
	return errors.Join(errs...)
}

// CheckStream compares the live stream named want.Name with want: same
// subjects, retention and storage, and a duplicate window at least as long
// (cmkd's retried publishes are dropped only inside it).
func CheckStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig) error {
	s, err := js.Stream(ctx, want.Name)
	if err != nil {
		return fmt.Errorf("stream %s: %w (create it from deploy/nats/, or set nats.create_streams)", want.Name, err)
	}
	got := s.CachedInfo().Config
	var errs []error
	bad := func(field string, g, w any) {
		errs = append(errs, fmt.Errorf("stream %s: %s is %v, cmkd needs %v: %w", want.Name, field, g, w, ErrIncompatible))
	}
	if !sameSet(got.Subjects, want.Subjects) {
		bad("subjects", got.Subjects, want.Subjects)
	}
	if got.Retention != want.Retention {
		bad("retention", got.Retention, want.Retention)
	}
	if got.Storage != want.Storage {
		bad("storage", got.Storage, want.Storage)
	}
	if got.Duplicates < want.Duplicates {
		bad("duplicate_window", got.Duplicates, fmt.Sprintf("at least %s", want.Duplicates))
	}
	return errors.Join(errs...)
}

// CheckConsumer compares the live durable consumer with want: a pull
// consumer with explicit acks, and the same number of deliveries (cmkd
// handles all but the last, which only dead-letters).
func CheckConsumer(ctx context.Context, js jetstream.JetStream, stream string, want jetstream.ConsumerConfig) error {
	c, err := js.Consumer(ctx, stream, want.Durable)
	if err != nil {
		return fmt.Errorf("consumer %s/%s: %w (create it from deploy/nats/, or set nats.create_streams)", stream, want.Durable, err)
	}
	got := c.CachedInfo().Config
	var errs []error
	bad := func(field string, g, w any) {
		errs = append(errs, fmt.Errorf("consumer %s/%s: %s is %v, cmkd needs %v: %w", stream, want.Durable, field, g, w, ErrIncompatible))
	}
	if got.AckPolicy != want.AckPolicy {
		bad("ack_policy", got.AckPolicy, want.AckPolicy)
	}
	if got.MaxDeliver != want.MaxDeliver {
		bad("max_deliver", got.MaxDeliver, want.MaxDeliver)
	}
	if got.DeliverSubject != "" {
		bad("deliver_subject", got.DeliverSubject, "none (a pull consumer)")
	}
	return errors.Join(errs...)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
