package webhook_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/events/webhook"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
)

// TestQueueModeThroughJetStream runs the queue-based deployment: the
// webhook enqueues to an embedded JetStream, and a natsq Source hands the
// event to the handler.
func TestQueueModeThroughJetStream(t *testing.T) {
	js := natstest.JetStream(t, natstest.Start(t, -1, "").ClientURL())

	got := make(chan events.Event, 4)
	src, err := natsq.New(js, natsq.Config{
		CreateStream: true, Decoder: events.NewDecoder(events.DecoderConfig{}), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(_ context.Context, ev events.Event) error { got <- ev; return nil }) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually.True(t, 10*time.Second, "the queue stream", func() bool {
		_, err := js.Stream(t.Context(), natsq.DefaultStream)
		return err == nil
	})

	url := serve(t, webhook.Config{Auth: webhook.Auth{SharedSecret: secret},
		Enqueue: func(ctx context.Context, body []byte) error { return natsq.Enqueue(ctx, js, "", body) }}, nil)
	if resp, body := post(t, url, keyEvent, withSecret); resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	select {
	case ev := <-got:
		if ev.ID != "ev-1" || ev.Key.URL() != "https://kv.vault.azure.net/keys/k" {
			t.Errorf("handled %+v", ev)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("event did not reach the handler through the queue")
	}
}
