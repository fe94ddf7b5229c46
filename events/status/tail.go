package status

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
)

// followPoll bounds one fetch while following, so a fetch lost to a
// reconnect is renewed.
const followPoll = 5 * time.Second

// Received is a status event as a reader gets it from the stream.
type Received struct {
	cmkd.StatusEvent
	// Seq is the event's sequence in the stream.
	Seq uint64
}

// TailOptions selects the status events Tail reads.
type TailOptions struct {
	Stream string // DefaultStream if empty
	// Since reads events stored at most this long ago; zero reads from the
	// start of the stream.
	Since  time.Duration
	Tenant string // all tenants if empty
	// Follow keeps reading new events until ctx ends; otherwise Tail stops
	// after the last event that existed when it started.
	Follow bool
}

// Tail calls fn for each status event in stream order, through an ordered
// ephemeral consumer (nothing is left behind on the server). It returns nil
// when done or when ctx ends, fn's error if fn fails, and an error wrapping
// cmkd.ErrInvalidStatusEvent if the stream holds something that is not a status event.
func Tail(ctx context.Context, js jetstream.JetStream, opts TailOptions, fn func(Received) error) error {
	stream := or(opts.Stream, DefaultStream)
	subject := cmkd.StatusSubjects
	if opts.Tenant != "" {
		if err := cmkd.ValidateTenantID(opts.Tenant); err != nil {
			return fmt.Errorf("tail: %w", err)
		}
		subject = cmkd.StatusSubject(opts.Tenant, ">")
	}
	occ := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverAllPolicy}
	var start time.Time
	if opts.Since > 0 {
		start = time.Now().Add(-opts.Since)
		occ.DeliverPolicy, occ.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
	}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("tail stream %s: %w", stream, err)
	}
	var last uint64
	if !opts.Follow {
		if last, err = lastSeq(ctx, s, subject, start); err != nil || last == 0 {
			return err
		}
	}
	// A tail whose process dies leaves its consumer behind this long.
	occ.InactiveThreshold = orphanTimeout
	c, err := s.OrderedConsumer(ctx, occ)
	if err != nil {
		return fmt.Errorf("tail stream %s: %w", stream, err)
	}
	defer deleteConsumer(s, c)
	return tailLoop(ctx, c, stream, last, fn)
}

// orphanTimeout is how long the server keeps the consumer of a tail that
// ended without deleting it.
const orphanTimeout = 30 * time.Second

// deleteConsumer deletes c, so that tails run in a loop do not pile up
// consumers on the server until its consumer limit refuses new ones. It
// runs after ctx may have ended, so on a context of its own; if it fails,
// orphanTimeout cleans up.
func deleteConsumer(s jetstream.Stream, c jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if info := c.CachedInfo(); info != nil {
		_ = s.DeleteConsumer(ctx, info.Name)
	}
}

// lastSeq is the sequence of the newest event matching subject stored at or
// after start, or 0 if there is none: where a tail without Follow stops.
func lastSeq(ctx context.Context, s jetstream.Stream, subject string, start time.Time) (uint64, error) {
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("tail: last event on %s: %w", subject, err)
	}
	if m.Time.Before(start) {
		return 0, nil
	}
	return m.Sequence, nil
}

// tailLoop reads c until ctx ends or, when last is not 0, past sequence last.
func tailLoop(ctx context.Context, c jetstream.Consumer, stream string, last uint64, fn func(Received) error) error {
	for {
		msg, err := next(ctx, c)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, nats.ErrTimeout), errors.Is(err, context.DeadlineExceeded), errors.Is(err, jetstream.ErrNoMessages):
			if last != 0 {
				return nil // the rest aged out of the stream meanwhile
			}
			continue
		case err != nil:
			return fmt.Errorf("tail stream %s: %w", stream, err)
		}
		var ev Received
		ev.StatusEvent, err = cmkd.ParseStatusEvent(msg.Data())
		if meta, merr := msg.Metadata(); merr == nil {
			ev.Seq = meta.Sequence.Stream
		}
		if err != nil {
			return fmt.Errorf("tail stream %s at %d: %w", stream, ev.Seq, err)
		}
		if err := fn(ev); err != nil {
			return err
		}
		if last != 0 && ev.Seq >= last {
			return nil
		}
	}
}

func next(ctx context.Context, c jetstream.Consumer) (jetstream.Msg, error) {
	fctx, cancel := context.WithTimeout(ctx, followPoll)
	defer cancel()
	return c.Next(jetstream.FetchContext(fctx))
}
