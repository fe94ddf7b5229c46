package natsq_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
)

// startJetStream runs an embedded nats-server with JetStream and returns a
// JetStream client for it.
func startJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	return natstest.JetStream(t, natstest.Start(t, -1, "").ClientURL())
}

func probe(id string) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"test","type":"io.cmkd.probe","data":{"key":"https://kv.vault.azure.net/keys/k"}}`, id)
}

// recorder counts handler calls per event id.
type recorder struct {
	mu    sync.Mutex
	calls map[string]int
	fn    func(call int, ev events.Event) error
}

func (r *recorder) handle(_ context.Context, ev events.Event) error {
	r.mu.Lock()
	if r.calls == nil {
		r.calls = map[string]int{}
	}
	r.calls[ev.ID]++
	n := r.calls[ev.ID]
	r.mu.Unlock()
	if r.fn != nil {
		return r.fn(n, ev)
	}
	return nil
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.calls[id]
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.calls)
}

func testConfig() natsq.Config {
	return natsq.Config{
		CreateStream: true,
		Decoder:      events.NewDecoder(events.DecoderConfig{}),
		AckWait:      2 * time.Second,
		Backoff:      []time.Duration{10 * time.Millisecond},
		MaxDeliver:   3,
		Logger:       slog.New(slog.DiscardHandler),
	}
}

// run starts a Source handing events to h and stops it at test end,
// failing if Run fails.
func run(t *testing.T, js jetstream.JetStream, cfg natsq.Config, h events.Handler) {
	t.Helper()
	src, err := natsq.New(js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	// Run creates the stream; wait for it so publishes are captured.
	eventually.True(t, 15*time.Second, "consumer", func() bool {
		_, err := js.Consumer(t.Context(), natsq.DefaultStream, natsq.DefaultDurable)
		return err == nil
	})
}

// settled reports whether the work queue is empty and nothing is pending.
func settled(t *testing.T, js jetstream.JetStream) bool {
	st, err := js.Stream(t.Context(), natsq.DefaultStream)
	if err != nil {
		return false
	}
	info, err := st.Info(t.Context())
	if err != nil {
		return false
	}
	c, err := st.Consumer(t.Context(), natsq.DefaultDurable)
	if err != nil {
		return false
	}
	ci, err := c.Info(t.Context())
	return err == nil && info.State.Msgs == 0 && ci.NumAckPending == 0
}

func dlqMessages(t *testing.T, js jetstream.JetStream, n int) []jetstream.Msg {
	t.Helper()
	c, err := js.OrderedConsumer(t.Context(), natsq.DefaultDLQStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var msgs []jetstream.Msg
	for len(msgs) < n {
		m, err := c.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("dead-letter message %d: %v", len(msgs), err)
		}
		msgs = append(msgs, m)
	}
	return msgs
}

func TestSuccessSettlesOnce(t *testing.T) {
	js := startJetStream(t)
	var rec recorder
	run(t, js, testConfig(), rec.handle)
	if err := natsq.Enqueue(t.Context(), js, "", probe("ok-1")); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 15*time.Second, "handled and acked", func() bool { return rec.count("ok-1") == 1 && settled(t, js) })
	c, _ := js.Consumer(t.Context(), natsq.DefaultStream, natsq.DefaultDurable)
	ci, err := c.Info(t.Context())
	if err != nil || ci.NumRedelivered != 0 || ci.Delivered.Consumer != 1 {
		t.Errorf("consumer after one success: %+v, %v", ci, err)
	}
	if n := rec.count("ok-1"); n != 1 {
		t.Errorf("handled %d times, want 1", n)
	}
}

func TestHandlerErrorRedelivers(t *testing.T) {
	js := startJetStream(t)
	rec := recorder{fn: func(call int, _ events.Event) error {
		if call == 1 {
			return errors.New("key vault unreachable")
		}
		return nil
	}}
	run(t, js, testConfig(), rec.handle)
	if err := natsq.Enqueue(t.Context(), js, "", probe("retry-1")); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 15*time.Second, "redelivered and acked", func() bool { return rec.count("retry-1") == 2 && settled(t, js) })
}

func TestMalformedIsDeadLetteredAndSourceGoesOn(t *testing.T) {
	js := startJetStream(t)
	var rec recorder
	run(t, js, testConfig(), rec.handle)
	if err := natsq.Enqueue(t.Context(), js, "cmkd.events.bad", []byte(`{"not":"an event"}`)); err != nil {
		t.Fatal(err)
	}
	if err := natsq.Enqueue(t.Context(), js, "", probe("after-bad")); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 15*time.Second, "good event handled", func() bool { return rec.count("after-bad") == 1 && settled(t, js) })
	m := dlqMessages(t, js, 1)[0]
	if string(m.Data()) != `{"not":"an event"}` {
		t.Errorf("dead letter body = %s", m.Data())
	}
	h := m.Headers()
	if h.Get(natsq.HeaderSubject) != "cmkd.events.bad" || h.Get(natsq.HeaderStreamSeq) != "1" ||
		h.Get(natsq.HeaderDeliveryCount) != "1" || h.Get(natsq.HeaderReason) == "" {
		t.Errorf("dead letter headers = %v", h)
	}
}

func TestPermanentAndExhaustedAreDeadLettered(t *testing.T) {
	js := startJetStream(t)
	rec := recorder{fn: func(_ int, ev events.Event) error {
		if ev.ID == "forbidden" {
			return events.Permanent(errors.New("access denied"))
		}
		return events.Transient(errors.New("throttled"), 5*time.Millisecond)
	}}
	run(t, js, testConfig(), rec.handle)
	for _, id := range []string{"forbidden", "flaky"} {
		if err := natsq.Enqueue(t.Context(), js, "", probe(id)); err != nil {
			t.Fatal(err)
		}
	}
	msgs := dlqMessages(t, js, 2)
	eventually.True(t, 15*time.Second, "queue settled", func() bool { return settled(t, js) })
	got := map[string]string{}
	for _, m := range msgs {
		got[m.Headers().Get(nats.MsgIdHdr)] = m.Headers().Get(natsq.HeaderDeliveryCount)
	}
	if rec.count("forbidden") != 1 || rec.count("flaky") != 3 {
		t.Errorf("handler calls: forbidden %d (want 1), flaky %d (want MaxDeliver 3)", rec.count("forbidden"), rec.count("flaky"))
	}
	if len(got) != 2 {
		t.Errorf("dead letters: %v", got)
	}
}

func TestEnqueueDropsDuplicateDelivery(t *testing.T) {
	js := startJetStream(t)
	var rec recorder
	run(t, js, testConfig(), rec.handle)
	for range 2 {
		if err := natsq.Enqueue(t.Context(), js, "", probe("dup")); err != nil {
			t.Fatal(err)
		}
	}
	if err := natsq.Enqueue(t.Context(), js, "", probe("marker")); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 15*time.Second, "marker handled", func() bool { return rec.count("marker") == 1 && settled(t, js) })
	if n := rec.count("dup"); n != 1 {
		t.Errorf("event enqueued twice handled %d times, want 1", n)
	}
}

func TestTwoConsumersSplitThousandEvents(t *testing.T) {
	js := startJetStream(t)
	const n = 1000
	var a, b recorder
	run(t, js, testConfig(), a.handle)
	run(t, js, testConfig(), b.handle)
	for i := range n {
		if err := natsq.Enqueue(t.Context(), js, "", probe(fmt.Sprintf("ev-%04d", i))); err != nil {
			t.Fatal(err)
		}
	}
	eventually.True(t, 15*time.Second, "all events handled and acked", func() bool { return a.distinct()+b.distinct() >= n && settled(t, js) })
	for i := range n {
		id := fmt.Sprintf("ev-%04d", i)
		if got := a.count(id) + b.count(id); got != 1 {
			t.Errorf("%s handled %d times, want exactly once", id, got)
		}
	}
	if a.distinct() == 0 || b.distinct() == 0 {
		t.Errorf("work not shared: %d and %d", a.distinct(), b.distinct())
	}
	t.Logf("split: %d / %d", a.distinct(), b.distinct())
}

func TestConfigValidate(t *testing.T) {
	dec := events.NewDecoder(events.DecoderConfig{})
	js := startJetStream(t)
	for _, tc := range []struct {
		cfg  natsq.Config
		want string
	}{
		{natsq.Config{}, "Decoder"},
		{natsq.Config{Decoder: dec, MaxDeliver: -1}, "MaxDeliver"},
		{natsq.Config{Decoder: dec, AckWait: time.Millisecond}, "AckWait"},
		{natsq.Config{Decoder: dec, Backoff: []time.Duration{-1}}, "Backoff[0]"},
	} {
		_, err := natsq.New(js, tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New(%+v) err = %v, want it to name %s", tc.cfg, err, tc.want)
		}
	}
}

func TestRunDrainsRunningHandlerOnShutdown(t *testing.T) {
	js := startJetStream(t)
	started, release := make(chan struct{}), make(chan struct{})
	src, err := natsq.New(js, testConfig())
	handler := func(ctx context.Context, _ events.Event) error {
		close(started)
		<-release
		return ctx.Err()
	}
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, handler) }()
	eventually.True(t, 15*time.Second, "consumer", func() bool {
		_, err := js.Consumer(t.Context(), natsq.DefaultStream, natsq.DefaultDurable)
		return err == nil
	})
	if err := natsq.Enqueue(t.Context(), js, "", probe("slow")); err != nil {
		t.Fatal(err)
	}
	<-started
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a handler was running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	eventually.True(t, 15*time.Second, "message acked after drain", func() bool { return settled(t, js) })
}
