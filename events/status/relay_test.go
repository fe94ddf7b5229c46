package status_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/store"
)

func TestRelayPublishesCloudEvents(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	st := newStore(t)
	sub, err := js.Conn().SubscribeSync("cmkd.status.>")
	if err != nil {
		t.Fatal(err)
	}
	runRelay(t, st, js, testConfig("r1"))
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := event(0, "acme", cmkd.KindRewrapCompleted)
	ev.Time = at
	if err := st.AppendOutbox(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no status event published: %v", err)
	}
	if msg.Subject != "cmkd.status.acme.rewrap.completed" {
		t.Errorf("subject %q, want cmkd.status.acme.rewrap.completed", msg.Subject)
	}
	if h := msg.Header.Get("Nats-Msg-Id"); h != ev.ID {
		t.Errorf("Nats-Msg-Id %q, want the event id %q", h, ev.ID)
	}
	if h := msg.Header.Get("Content-Type"); h != "application/cloudevents+json" {
		t.Errorf("Content-Type %q", h)
	}
	got, err := cmkd.ParseStatusEvent(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != ev.ID || got.Source != "cmkd/r1" || got.Kind != cmkd.KindRewrapCompleted ||
		got.Tenant != "acme" || !got.Time.Equal(at) || got.Reason != "disabled" || got.Key != ev.Key {
		t.Errorf("published %s", msg.Data)
	}
	for _, want := range []string{`"specversion":"1.0"`, `"type":"io.cmkd.rewrap.completed"`, `"subject":"acme"`,
		`"datacontenttype":"application/json"`, `"tenant":"acme"`} {
		if !strings.Contains(string(msg.Data), want) {
			t.Errorf("published document lacks %s: %s", want, msg.Data)
		}
	}
	if !strings.Contains(string(msg.Data), `"time":"2026-03-01T12:00:00Z"`) {
		t.Errorf("time is not RFC 3339 UTC: %s", msg.Data)
	}
}

func TestRelayCountsWhatItPublishes(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	st := newStore(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig("r1")
	cfg.Registerer = reg
	runRelay(t, st, js, cfg)
	write(t, st, 0, 5)
	waitStream(t, js, 5)
	eventually.True(t, 10*time.Second, "5 publishes are counted", func() bool {
		return metric(t, reg, "cmkd_status_published_total") == 5
	})
	if n := metric(t, reg, "cmkd_status_publish_seconds"); n != 5 {
		t.Errorf("%v publish durations observed, want 5", n)
	}
	if d := metric(t, reg, "cmkd_outbox_depth"); d != 0 {
		t.Errorf("outbox depth %v after everything was published", d)
	}
	if f := metric(t, reg, "cmkd_status_publish_failures_total"); f != 0 {
		t.Errorf("%v failures with NATS up", f)
	}
}

func TestKickPublishesWithoutWaitingForThePoll(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	st := newStore(t)
	cfg := testConfig("r1")
	cfg.Interval = time.Hour
	r := runRelay(t, st, js, cfg)
	write(t, st, 0, 1)
	r.Kick()
	waitStream(t, js, 1) // now the relay has gone idle for an hour
	write(t, st, 1, 1)
	r.Kick()
	checkOnceEach(t, waitStream(t, js, 2), 0, 2)
}

func TestNATSOutageLosesNothingAndDoublesNothing(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, -1, dir)
	clientURL := ns.ClientURL()
	js := jsFor(t, clientURL)
	st := newStore(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig("r1")
	cfg.Registerer = reg
	runRelay(t, st, js, cfg)
	write(t, st, 0, 10)
	waitStream(t, js, 10)

	ns.Shutdown()
	ns.WaitForShutdown()
	write(t, st, 10, 20) // state changes go on while NATS is down
	eventually.True(t, 10*time.Second, "the relay notices NATS is down", func() bool {
		return metric(t, reg, "cmkd_status_publish_failures_total") >= 2
	})
	startNATS(t, portOf(t, clientURL), dir)

	evs := waitStream(t, js, 30)
	checkOnceEach(t, evs, 0, 30)
	for i, e := range evs {
		if want := event(i, "", "").ID; e.ID != want {
			t.Fatalf("stream position %d holds %s, want %s: the relay reordered the outbox", i, e.ID, want)
		}
	}
}

func TestRelayRecreatesAStreamTheServerLost(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	clientURL := ns.ClientURL()
	js := jsFor(t, clientURL)
	st := newStore(t)
	runRelay(t, st, js, testConfig("r1"))
	write(t, st, 0, 2)
	waitStream(t, js, 2)

	ns.Shutdown()
	ns.WaitForShutdown()
	startNATS(t, portOf(t, clientURL), t.TempDir()) // same address, empty storage
	write(t, st, 2, 3)
	checkOnceEach(t, waitStream(t, js, 3), 2, 3)
}

func TestTwoRelaysPublishEachEventOnce(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	path := t.TempDir() + "/cmkd.db"
	st1, st2 := openStore(t, path), openStore(t, path)
	for _, name := range []string{"r1", "r2"} {
		cfg := testConfig(name)
		cfg.Batch = 7 // many small claims, so the relays interleave
		runRelay(t, map[string]*store.Store{"r1": st1, "r2": st2}[name], js, cfg)
	}
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() { write(t, []*store.Store{st1, st2}[i%2], i*50, 50) })
	}
	wg.Wait()
	evs := waitStream(t, js, 200)
	checkOnceEach(t, evs, 0, 200)
	sources := map[string]bool{}
	for _, e := range evs {
		sources[e.Source] = true
	}
	t.Logf("published by %v", sources)
}

func TestRepublishAfterCrashIsDeduplicated(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	st := newStore(t)
	if _, err := status.EnsureStream(t.Context(), js, status.Config{Instance: "x"}); err != nil {
		t.Fatal(err)
	}
	write(t, st, 0, 3)
	// A relay published these, then died before marking them sent; its
	// claim runs out at once.
	entries, err := st.ClaimOutbox(t.Context(), "crashed", 10, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		e.Event.Source = "cmkd/crashed"
		body, err := e.Event.MarshalCloudEvent()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := js.Publish(t.Context(), e.Event.Subject(), body, jetstream.WithMsgID(e.Event.ID)); err != nil {
			t.Fatal(err)
		}
	}
	runRelay(t, st, js, testConfig("r2"))
	write(t, st, 3, 1) // published after the others only once they are marked
	evs := waitStream(t, js, 4)
	checkOnceEach(t, evs, 0, 4)
	eventually.True(t, 10*time.Second, "the relay marks every entry sent", func() bool {
		left, err := st.ClaimOutbox(t.Context(), "probe", 10, time.Nanosecond)
		return err == nil && len(left) == 0
	})
	if n := streamMsgs(t, js); n != 4 {
		t.Errorf("the stream holds %d events, want 4", n)
	}
}

func TestEnsureStreamIsIdempotent(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	cfg := status.Config{Instance: "x", MaxAge: time.Hour}
	for range 2 {
		if _, err := status.EnsureStream(t.Context(), js, cfg); err != nil {
			t.Fatal(err)
		}
	}
	s, err := js.Stream(t.Context(), status.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	c := s.CachedInfo().Config
	if c.Storage != jetstream.FileStorage || c.MaxAge != time.Hour || c.Duplicates != status.DefaultDuplicates ||
		len(c.Subjects) != 1 || c.Subjects[0] != "cmkd.status.>" {
		t.Errorf("stream config %+v", c)
	}
}

func TestConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg  status.Config
		want string
	}{
		{status.Config{}, "Instance"},
		{status.Config{Instance: "a", Batch: -1}, "Batch"},
		{status.Config{Instance: "a", Claim: -time.Second}, "Claim"},
		{status.Config{Instance: "a", Claim: 20 * time.Minute}, "Duplicates"},
		{status.Config{Instance: "a", Duplicates: time.Second, Claim: time.Second}, "Duplicates"},
		{status.Config{Instance: "a"}, ""},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want an error naming %q", tc.cfg, err, tc.want)
		}
	}
}

func TestRelayHoldsEventsUntilTheStreamExists(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	st := newStore(t)
	reg := prometheus.NewRegistry()
	cfg := testConfig("r1")
	cfg.CreateStream = false    // the stream is an operator's to create
	cfg.Claim = 4 * time.Second // so the relay's claims run out while it waits
	cfg.Registerer = reg
	runRelay(t, st, js, cfg)
	start := time.Now()
	write(t, st, 0, 3)
	eventually.True(t, 10*time.Second, "publishes fail for want of a stream", func() bool {
		return metric(t, reg, "cmkd_status_publish_failures_total") >= 1
	})
	// Written while the first batch is still claimed: they must not
	// overtake it when its claim runs out and it is taken again.
	write(t, st, 3, 2)
	eventually.True(t, 10*time.Second, "the first claim has run out", func() bool { return time.Since(start) > cfg.Claim+cfg.Claim/8 })
	if _, err := status.EnsureStream(t.Context(), js, status.Config{Instance: "operator"}); err != nil {
		t.Fatal(err)
	}
	evs := waitStream(t, js, 5)
	checkOnceEach(t, evs, 0, 5)
	for i, e := range evs {
		if want := event(i, "", "").ID; e.ID != want {
			t.Errorf("stream position %d holds %s, want %s", i, e.ID, want)
		}
	}
}

// failingMarks is a real backend whose MarkSent fails while fails > 0, as
// it does on a full disk.
type failingMarks struct {
	store.Backend
	fails atomic.Int32
}

func (f *failingMarks) MarkSent(ctx context.Context, ids []string) error {
	if f.fails.Add(-1) >= 0 {
		return errors.New("database or disk is full")
	}
	return f.Backend.MarkSent(ctx, ids)
}

// Events published but not marked sent (the store refused the write) are
// marked as soon as the store takes writes again, not left claimed until
// the claim runs out: the tenant's later events wait behind them (found by
// the chaos harness: 30 s of silence after a full disk).
func TestUnmarkedEventsAreMarkedWhenTheStoreRecovers(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	fb := &failingMarks{Backend: openBackend(t, filepath.Join(t.TempDir(), "cmkd.db"))}
	fb.fails.Store(3)
	st := storeOn(t, fb)
	cfg := testConfig("r1")
	cfg.Claim = time.Minute
	runRelay(t, st, js, cfg)
	write(t, st, 0, 1)
	waitStream(t, js, 1)
	write(t, st, 1, 1) // the same tenant's next event
	start := time.Now()
	evs := waitStream(t, js, 2)
	checkOnceEach(t, evs, 0, 2)
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("the next event took %s, want well under the claim's minute", took)
	}
}
