package worker_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	emulator "github.com/cmkd-io/cmkd/emulator/eventgrid"
	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/eventgrid"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/events/webhook"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
	"github.com/cmkd-io/cmkd/worker"
)

// panicOnce is a handler that panics on its first call and succeeds after:
// a bug that a retry outlives (a race, a nil a later read fills in).
type panicOnce struct {
	mu    sync.Mutex
	calls int
}

func (p *panicOnce) handle(context.Context, events.Event) error {
	p.mu.Lock()
	p.calls++
	n := p.calls
	p.mu.Unlock()
	if n == 1 {
		panic("handler bug")
	}
	return nil
}

func (p *panicOnce) n() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.calls
}

// wrapped is a worker's middleware around a handler that panics once, and
// the registry that counts what happened.
func wrapped(t *testing.T, source string) (events.Handler, *panicOnce, *prometheus.Registry) {
	t.Helper()
	e := newEnv(t)
	reg := prometheus.NewRegistry()
	w := e.worker(e.openStore(), "w1", func(c *worker.Config) { c.Registerer, c.Gatherer = reg, reg })
	p := &panicOnce{}
	return w.Wrap(source, p.handle), p, reg
}

func checkPanicCounted(t *testing.T, reg *prometheus.Registry, source string) {
	t.Helper()
	want := fmt.Sprintf(`
# HELP cmkd_handler_panics_total Event handler panics recovered, by source; each event was retried.
# TYPE cmkd_handler_panics_total counter
cmkd_handler_panics_total{source=%q} 1
`, source)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cmkd_handler_panics_total"); err != nil {
		t.Fatal(err)
	}
}

const probeBody = `{"specversion":"1.0","id":"p-1","source":"cmkd/test","type":"io.cmkd.probe","time":"2026-01-01T00:00:00Z",` +
	`"data":{"key":"https://v.vault.azure.net/keys/k"}}`

// A panic while handling an Event Grid delivery is recovered; the event is
// released, delivered again, handled and acknowledged.
func TestPanicRecoveredEventGrid(t *testing.T) {
	h, p, reg := wrapped(t, "eventgrid")
	emu, err := emulator.Start(emulator.Config{Key: "k", Topics: map[string][]string{"keyvault-events": {"cmkd"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	src, err := eventgrid.New(eventgrid.Config{
		Endpoint: emu.URL(), Topic: "keyvault-events", Subscription: "cmkd", Key: "k", RootCAs: emu.CAPool(),
		MaxWait: 10 * time.Second, ReleaseDelay: -1, Decoder: events.NewDecoder(events.DecoderConfig{}),
	})
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, src, h)
	if err := emu.PublishRaw("keyvault-events", []byte(probeBody)); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 20*time.Second, "the event handled after the panic and acknowledged", func() bool {
		return p.n() >= 2 && emu.Pending("keyvault-events", "cmkd") == 0
	})
	if dl := emu.DeadLetters("keyvault-events", "cmkd"); len(dl) != 0 {
		t.Fatalf("dead-lettered %d events, want the panicking one retried", len(dl))
	}
	checkPanicCounted(t, reg, "eventgrid")
}

// A panic while handling a CMKD_EVENTS message is recovered; the message is
// redelivered, handled and acknowledged.
func TestPanicRecoveredQueue(t *testing.T) {
	h, p, reg := wrapped(t, "queue")
	js := natstest.JetStream(t, natstest.Start(t, -1, "").ClientURL())
	src, err := natsq.New(js, natsq.Config{
		CreateStream: true, Decoder: events.NewDecoder(events.DecoderConfig{}),
		Backoff: []time.Duration{10 * time.Millisecond}, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	runSource(t, src, h)
	eventually.True(t, 10*time.Second, "the queue's consumer", func() bool {
		_, err := js.Consumer(t.Context(), natsq.DefaultStream, natsq.DefaultDurable)
		return err == nil
	})
	if err := natsq.Enqueue(t.Context(), js, "", []byte(probeBody)); err != nil {
		t.Fatal(err)
	}
	eventually.NoError(t, 20*time.Second, "the message handled after the panic and acknowledged", func() (bool, error) {
		s, err := js.Stream(t.Context(), natsq.DefaultStream)
		if err != nil {
			return false, err
		}
		info, err := s.Info(t.Context())
		return p.n() >= 2 && err == nil && info.State.Msgs == 0, err
	})
	checkPanicCounted(t, reg, "queue")
}

// A panic while handling a webhook delivery is recovered and answered 503,
// so Event Grid delivers again; the next delivery is handled (200).
func TestPanicRecoveredWebhook(t *testing.T) {
	h, p, reg := wrapped(t, "webhook")
	src, err := webhook.New(webhook.Config{Auth: webhook.Auth{SharedSecret: "s3cret"},
		Decoder: events.NewDecoder(events.DecoderConfig{}), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(src.Handler(h))
	t.Cleanup(srv.Close)
	post := func() int {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL, strings.NewReader(probeBody))
		req.Header.Set(webhook.DefaultSecretHeader, "s3cret")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	if code := post(); code != http.StatusServiceUnavailable {
		t.Fatalf("delivery whose handler panicked answered %d, want 503 so that it is retried", code)
	}
	if code := post(); code != http.StatusOK || p.n() != 2 {
		t.Fatalf("retried delivery answered %d after %d calls, want 200 after 2", code, p.n())
	}
	checkPanicCounted(t, reg, "webhook")
}

// runSource runs src with h until the test ends.
func runSource(t *testing.T, src events.Source, h events.Handler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, h) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: Run: %v", src.Name(), err)
		}
	})
}

// A source's panic counter exists at 0 as soon as the source is wrapped:
// an alert on increase() sees the first panic after a restart, which it
// would miss on a series that appears with its first count.
func TestPanicCounterExistsBeforeTheFirstPanic(t *testing.T) {
	_, p, reg := wrapped(t, "queue")
	want := `
# HELP cmkd_handler_panics_total Event handler panics recovered, by source; each event was retried.
# TYPE cmkd_handler_panics_total counter
cmkd_handler_panics_total{source="queue"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "cmkd_handler_panics_total"); err != nil {
		t.Fatal(err)
	}
	if p.n() != 0 {
		t.Fatal("handler called")
	}
}
