package throughput

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	egemu "github.com/cmkd-io/cmkd/emulator/eventgrid"
	cevents "github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/natsq"
)

// rawDurable is the baseline's consumer; CMKD_EVENTS is a work queue, which
// allows one unfiltered consumer at a time, so it is deleted afterwards.
const rawDurable = "bench-raw"

// ensureStream creates CMKD_EVENTS as natsq creates it, so that events can
// be queued before any source runs.
func (r *rig) ensureStream(ctx context.Context) (jetstream.JetStream, error) {
	js, err := jetstream.New(r.nats.Conn)
	if err != nil {
		return nil, err
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: natsq.DefaultStream, Subjects: []string{natsq.DefaultSubject}, Retention: jetstream.WorkQueuePolicy,
	})
	return js, err
}

// enqueue queues each event as its own message, the way the webhook source
// enqueues Event Grid's deliveries (natsq.Enqueue).
func enqueue(ctx context.Context, js jetstream.JetStream, evs []egemu.CloudEvent) error {
	for _, ev := range evs {
		body, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		if err := natsq.Enqueue(ctx, js, "", body); err != nil {
			return err
		}
	}
	return nil
}

// rawJS is the JetStream baseline: nats.go alone, a durable pull consumer
// fetching up to 100 at a time and acknowledging each message, until the
// stream is empty (a work queue drops a message once it is acknowledged).
// No decoding, no handler.
func (r *rig) rawJS(ctx context.Context, js jetstream.JetStream, n int) (measured, error) {
	m := measured{events: n}
	cons, err := js.CreateOrUpdateConsumer(ctx, natsq.DefaultStream, jetstream.ConsumerConfig{
		Durable: rawDurable, AckPolicy: jetstream.AckExplicitPolicy,
	})
	if err != nil {
		return m, err
	}
	defer js.DeleteConsumer(context.WithoutCancel(ctx), natsq.DefaultStream, rawDurable)
	start := time.Now()
	if err := consumeAck(cons, n); err != nil {
		return m, fmt.Errorf("raw jetstream: %w", err)
	}
	if err := waitFor(ctx, drainTimeout, "the raw consumer's acks", func() (bool, error) {
		left, err := r.jsUnacked(ctx, js, rawDurable)
		return left == 0, err
	}); err != nil {
		return m, err
	}
	m.elapsed = time.Since(start)
	m.unacked, err = r.jsUnacked(ctx, js, rawDurable)
	return m, err
}

// consumeAck takes n messages from cons and acknowledges each.
func consumeAck(cons jetstream.Consumer, n int) error {
	it, err := cons.Messages(jetstream.PullMaxMessages(batch))
	if err != nil {
		return err
	}
	defer it.Stop()
	for range n {
		msg, err := it.Next()
		if err != nil {
			return err
		}
		if err := msg.Ack(); err != nil {
			return err
		}
	}
	return nil
}

// cmkdJS is cmkd's CMKD_EVENTS pipeline: the natsq source (decode, handle,
// acknowledge) handing events to Worker.Handle, with as many messages in
// flight as the Event Grid phase allows events.
// A nil handle means Worker.Handle; noop measures the source alone.
func (r *rig) cmkdJS(ctx context.Context, js jetstream.JetStream, n int, handle cevents.Handler) (measured, error) {
	if handle == nil {
		handle = r.w.Handle
	}
	handle = r.w.Wrap("queue", handle)
	src, err := natsq.New(js, natsq.Config{
		CreateStream: true, MaxInFlight: batch, Decoder: r.dec, Logger: r.log,
	})
	if err != nil {
		return measured{}, err
	}
	m, err := r.pipeline(ctx, n, src, handle, func(ctx context.Context) (bool, error) {
		left, err := r.jsUnacked(ctx, js, natsq.DefaultDurable)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return false, nil // the source has not created it yet
		}
		return left == 0, err
	})
	if err != nil {
		return m, err
	}
	dead, err := deadLettered(ctx, js)
	m.unacked += dead
	return m, err
}

// jsUnacked counts messages still in CMKD_EVENTS or delivered to durable
// and not yet acknowledged.
func (r *rig) jsUnacked(ctx context.Context, js jetstream.JetStream, durable string) (int, error) {
	st, err := js.Stream(ctx, natsq.DefaultStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	c, err := st.Consumer(ctx, durable)
	if err != nil {
		return 0, err
	}
	ci, err := c.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.State.Msgs) + ci.NumAckPending, nil
}

// deadLettered counts what natsq copied to its dead-letter stream.
func deadLettered(ctx context.Context, js jetstream.JetStream) (int, error) {
	st, err := js.Stream(ctx, natsq.DefaultDLQStream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(ctx)
	if err != nil {
		return 0, err
	}
	return int(info.State.Msgs), nil
}
