package eventgrid_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	emulator "github.com/cmkd-io/cmkd/emulator/eventgrid"
	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/eventgrid"
	"github.com/cmkd-io/cmkd/internal/eventually"
)

const (
	topic = "keyvault-events"
	sub   = "cmkd"
	key   = "namespace-key"
)

// recorder is a handler that records what it saw and answers per key.
type recorder struct {
	mu     sync.Mutex
	seen   []events.Event
	answer func(ev events.Event, call int) error
	calls  chan events.Event
}

func newRecorder(answer func(ev events.Event, call int) error) *recorder {
	return &recorder{answer: answer, calls: make(chan events.Event, 100)}
}

func (r *recorder) handle(ctx context.Context, ev events.Event) error {
	r.mu.Lock()
	r.seen = append(r.seen, ev)
	n := 0
	for _, s := range r.seen {
		if s.ID == ev.ID {
			n++
		}
	}
	r.mu.Unlock()
	var err error
	if r.answer != nil {
		err = r.answer(ev, n)
	}
	r.calls <- ev
	return err
}

func (r *recorder) count(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, s := range r.seen {
		if s.ID == id {
			n++
		}
	}
	return n
}

type fixture struct {
	emu *emulator.Server
	reg *prometheus.Registry
	rec *recorder
}

func startEmulator(t *testing.T, cfg emulator.Config) *emulator.Server {
	t.Helper()
	cfg.Key = key
	cfg.Topics = map[string][]string{topic: {sub}}
	s, err := emulator.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// run starts a source against the emulator and stops it at test end.
func run(t *testing.T, emuCfg emulator.Config, rec *recorder, tweak func(*eventgrid.Config)) *fixture {
	t.Helper()
	emu := startEmulator(t, emuCfg)
	reg := prometheus.NewRegistry()
	cfg := eventgrid.Config{
		Endpoint: emu.URL(), Topic: topic, Subscription: sub, Key: key, RootCAs: emu.CAPool(),
		MaxWait: 10 * time.Second, ReleaseDelay: -1,
		Decoder:    events.NewDecoder(events.DecoderConfig{}),
		Registerer: reg,
	}
	if tweak != nil {
		tweak(&cfg)
	}
	src, err := eventgrid.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, rec.handle) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	})
	return &fixture{emu: emu, reg: reg, rec: rec}
}

func probe(id, keyURL string) []byte {
	return fmt.Appendf(nil, `{"specversion":"1.0","id":%q,"source":"cmkd/test","type":"io.cmkd.probe","time":"2024-05-01T10:00:00Z","data":{"key":%q}}`, id, keyURL)
}

func (f *fixture) publish(t *testing.T, body []byte) {
	t.Helper()
	if err := f.emu.PublishRaw(topic, body); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) waitCall(t *testing.T) events.Event {
	t.Helper()
	select {
	case ev := <-f.rec.calls:
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("handler not called")
		return events.Event{}
	}
}

func (f *fixture) waitSettled(t *testing.T) {
	t.Helper()
	eventually.True(t, 15*time.Second, "all events settled", func() bool { return f.emu.Pending(topic, sub) == 0 })
}

// deliveries reads cmkd_eventgrid_deliveries_total{outcome}.
func (f *fixture) deliveries(t *testing.T, outcome string) float64 {
	t.Helper()
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cmkd_eventgrid_deliveries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "outcome" && l.GetValue() == outcome {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no deliveries series for outcome %q", outcome)
	return 0
}

func TestSuccessSettlesOnce(t *testing.T) {
	f := run(t, emulator.Config{}, newRecorder(nil), nil)
	body := probe("probe-1", "https://Sample-KV.vault.azure.net/keys/tenant-key")
	f.publish(t, body)

	ev := f.waitCall(t)
	if ev.Type != events.TypeProbe || ev.Key.URL() != "https://sample-kv.vault.azure.net/keys/tenant-key" {
		t.Errorf("handled %+v, want the probe of tenant-key", ev)
	}
	var raw map[string]any
	if err := json.Unmarshal(ev.Raw, &raw); err != nil || raw["id"] != "probe-1" {
		t.Errorf("Raw = %s, want the delivered event", ev.Raw)
	}
	f.waitSettled(t)
	eventually.True(t, 5*time.Second, "handled counted", func() bool { return f.deliveries(t, "handled") == 1 })
	if n := f.rec.count("probe-1"); n != 1 {
		t.Errorf("handled %d times, want once", n)
	}
	if dl := f.emu.DeadLetters(topic, sub); len(dl) != 0 {
		t.Errorf("dead letters %v, want none", dl)
	}
}

// Acknowledgements go out in batches of at most 100 lock tokens: 250
// events in flight at once are each handled once and all settled, none
// redelivered, and the failure counter stays at zero.
func TestManyEventsAcknowledgedInBatches(t *testing.T) {
	const n = 250
	f := run(t, emulator.Config{}, newRecorder(nil), func(c *eventgrid.Config) {
		c.MaxEvents, c.MaxInFlight = 100, n
	})
	for i := range n {
		f.publish(t, probe(fmt.Sprintf("probe-%03d", i), "https://sample-kv.vault.azure.net/keys/k"))
	}
	go func() { // the recorder's channel holds 100 calls
		for range n {
			select {
			case <-f.rec.calls:
			case <-t.Context().Done():
				return
			}
		}
	}()
	eventually.True(t, 15*time.Second, "all handled", func() bool { return f.deliveries(t, "handled") == n })
	f.waitSettled(t)
	for i := range n {
		if c := f.rec.count(fmt.Sprintf("probe-%03d", i)); c != 1 {
			t.Fatalf("probe-%03d handled %d times, want once", i, c)
		}
	}
}

func TestHandlerErrorRedelivers(t *testing.T) {
	rec := newRecorder(func(_ events.Event, call int) error {
		if call == 1 {
			return errors.New("key vault unreachable")
		}
		return nil
	})
	f := run(t, emulator.Config{}, rec, nil)
	f.publish(t, probe("probe-retry", "https://v.vault.azure.net/keys/k"))

	f.waitCall(t)
	f.waitCall(t)
	f.waitSettled(t)
	if n := rec.count("probe-retry"); n != 2 {
		t.Errorf("handled %d times, want 2 (fail, then succeed)", n)
	}
	eventually.True(t, 5*time.Second, "outcomes counted", func() bool {
		return f.deliveries(t, "retried") == 1 && f.deliveries(t, "handled") == 1
	})
}

func TestMalformedDeadLetteredAndSourceGoesOn(t *testing.T) {
	rec := newRecorder(func(ev events.Event, _ int) error {
		if ev.Key.Name == "forbidden" {
			return events.Permanent(errors.New("access denied"))
		}
		return nil
	})
	f := run(t, emulator.Config{}, rec, func(c *eventgrid.Config) { c.MaxInFlight = 1 })
	f.publish(t, []byte(`{"specversion":"1.0","id":"bad-1","source":"/subscriptions/x/vaults/v","type":"Microsoft.KeyVault.KeyNewVersionCreated","data":"not an object"}`))
	f.publish(t, []byte(`{"specversion":"1.0","id":"secret-1","source":"/subscriptions/x/vaults/v","type":"Microsoft.KeyVault.SecretNewVersionCreated","data":{"Id":"https://v.vault.azure.net/secrets/s/1"}}`))
	f.publish(t, probe("perm-1", "https://v.vault.azure.net/keys/forbidden"))
	f.publish(t, probe("good-1", "https://v.vault.azure.net/keys/k"))

	if ev := f.waitCall(t); ev.ID != "perm-1" {
		t.Fatalf("first handled %s, want perm-1 (bad-1 and secret-1 never reach the handler)", ev.ID)
	}
	if ev := f.waitCall(t); ev.ID != "good-1" {
		t.Fatalf("then handled %s, want good-1", ev.ID)
	}
	f.waitSettled(t)
	dl := f.emu.DeadLetters(topic, sub)
	if len(dl) != 2 || dl[0].Event.ID != "bad-1" || dl[1].Event.ID != "perm-1" || dl[0].Reason != emulator.ReasonRejected {
		t.Fatalf("dead letters = %+v, want bad-1 and perm-1 rejected", dl)
	}
	eventually.True(t, 5*time.Second, "outcomes counted", func() bool {
		return f.deliveries(t, "malformed") == 1 && f.deliveries(t, "ignored") == 1 &&
			f.deliveries(t, "rejected") == 1 && f.deliveries(t, "handled") == 1
	})
}

func TestLockRenewedWhileHandlerRuns(t *testing.T) {
	const lock = time.Second
	rec := newRecorder(func(events.Event, int) error {
		<-time.After(3 * lock) // slow work, well past the lock duration
		return nil
	})
	f := run(t, emulator.Config{LockDuration: lock}, rec, func(c *eventgrid.Config) { c.LockRenew = lock / 4 })
	f.publish(t, probe("slow-1", "https://v.vault.azure.net/keys/k"))

	f.waitCall(t)
	f.waitSettled(t)
	if n := rec.count("slow-1"); n != 1 {
		t.Errorf("handled %d times, want once: the lock must not have expired", n)
	}
	if h := f.deliveries(t, "handled"); h != 1 {
		t.Errorf("handled counter = %v, want 1", h)
	}
}

func TestShutdownDrainsInFlight(t *testing.T) {
	emu := startEmulator(t, emulator.Config{})
	started, finish := make(chan struct{}), make(chan struct{})
	src, err := eventgrid.New(eventgrid.Config{
		Endpoint: emu.URL(), Topic: topic, Subscription: sub, Key: key, RootCAs: emu.CAPool(), MaxWait: 10 * time.Second,
		Decoder: events.NewDecoder(events.DecoderConfig{}),
	})
	handler := func(ctx context.Context, _ events.Event) error {
		close(started)
		<-finish
		return ctx.Err()
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := emu.PublishRaw(topic, probe("drain-1", "https://v.vault.azure.net/keys/k")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, handler) }()
	<-started
	cancel()
	select {
	case <-done:
		t.Fatal("Run returned while a handler was running")
	case <-time.After(200 * time.Millisecond):
	}
	close(finish)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after the handler finished")
	}
	if n := emu.Pending(topic, sub); n != 0 {
		t.Errorf("Pending = %d after drain, want 0 (handler's success acknowledged)", n)
	}
}

func TestConfigValidate(t *testing.T) {
	valid := func() eventgrid.Config {
		return eventgrid.Config{
			Endpoint: "https://ns.westeurope-1.eventgrid.azure.net", Topic: "t", Subscription: "s", Key: "k",
			Decoder: events.NewDecoder(events.DecoderConfig{}),
		}
	}
	if _, err := eventgrid.New(valid()); err != nil {
		t.Fatalf("valid config refused: %v", err)
	}
	for field, breakIt := range map[string]func(*eventgrid.Config){
		"Endpoint":     func(c *eventgrid.Config) { c.Endpoint = "http://ns" },
		"Topic":        func(c *eventgrid.Config) { c.Topic = "" },
		"Subscription": func(c *eventgrid.Config) { c.Subscription = "" },
		"Credential":   func(c *eventgrid.Config) { c.Key = "" },
		"MaxEvents":    func(c *eventgrid.Config) { c.MaxEvents = 101 },
		"MaxWait":      func(c *eventgrid.Config) { c.MaxWait = 5 * time.Second },
		"MaxInFlight":  func(c *eventgrid.Config) { c.MaxInFlight = -1 },
		"ReleaseDelay": func(c *eventgrid.Config) { c.ReleaseDelay = 2 * time.Hour },
		"Decoder":      func(c *eventgrid.Config) { c.Decoder = nil },
	} {
		cfg := valid()
		breakIt(&cfg)
		_, err := eventgrid.New(cfg)
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: err = %v, want one naming the field", field, err)
		}
	}
}
