package status

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// TailOptions selects the status events Tail reads.
type TailOptions struct {
	Stream string // DefaultStream if empty
	// Since reads events at most this old; zero reads from the start.
	Since  time.Duration
	Tenant string // all tenants if empty
	// Follow keeps reading new events until ctx ends; otherwise Tail stops
	// after the last event that existed when it started.
	Follow bool
}

// Tail calls fn for each status event in stream order, through an ordered
// ephemeral consumer (nothing is left behind on the server).
func Tail(ctx context.Context, js jetstream.JetStream, opts TailOptions, fn func(Event) error) error {
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	subject := "cmkd.status.>"
	if opts.Tenant != "" {
		subject = Subject(opts.Tenant, ">")
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy}
	if opts.Since > 0 {
		t := time.Now().Add(-opts.Since)
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	s, err := js.Stream(ctx, opts.Stream)
	if err != nil {
		return fmt.Errorf("status stream %s: %w (is cmkd running against this NATS?)", opts.Stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return err
	}
	last := info.State.LastSeq
	if !opts.Follow && info.State.Msgs == 0 {
		return nil
	}
	c, err := s.OrderedConsumer(ctx, occ)
	if err != nil {
		return err
	}
	for {
		msg, err := c.Next(jetstream.FetchMaxWait(time.Second))
		if errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) {
			if ctx.Err() != nil {
				return nil
			}
			if !opts.Follow {
				return nil
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		meta, _ := msg.Metadata()
		ev, err := Decode(msg.Data())
		if err != nil {
			return fmt.Errorf("stream %s: %w", opts.Stream, err)
		}
		if meta != nil {
			ev.Seq = meta.Sequence.Stream
		}
		if err := fn(ev); err != nil {
			return err
		}
		if !opts.Follow && ev.Seq >= last {
			return nil
		}
	}
}
