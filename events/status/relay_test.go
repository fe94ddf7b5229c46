package status_test

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
)

// openStore opens a SQLite store. The relay never calls Key Vault, so the
// kek client points nowhere.
func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	k, err := kek.New(kek.Config{Credential: kek.StaticToken("unused")})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Config{Backend: b, KEK: k})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func startNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats did not start")
	}
	return ns
}

func jsFor(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func runRelay(t *testing.T, st *store.Store, js jetstream.JetStream, name string) {
	t.Helper()
	r, err := status.NewRelay(st, js, status.Config{Instance: name, CreateStream: true, Interval: 20 * time.Millisecond, Backoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
}

func publish(t *testing.T, st *store.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		ev := store.StatusEvent{ID: fmt.Sprintf("ev-%04d", i), Kind: store.KindSealed, Tenant: "acme",
			Data: map[string]any{"reason": "disabled", "key": "https://v.vault.azure.net/keys/k"}}
		if err := st.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
}

// collect reads the whole stream, counting each event id.
func collect(t *testing.T, js jetstream.JetStream) map[string]int {
	t.Helper()
	got := map[string]int{}
	err := status.Tail(t.Context(), js, status.TailOptions{}, func(e status.Event) error {
		got[e.ID]++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func waitFor(t *testing.T, js jetstream.JetStream, n int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		s, err := js.Stream(t.Context(), status.DefaultStream)
		if err == nil {
			if info, err := s.Info(t.Context()); err == nil && info.State.Msgs >= uint64(n) {
				return collect(t, js)
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %d status events", n)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestRelayPublishesCloudEvents(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	defer ns.Shutdown()
	js := jsFor(t, ns.ClientURL())
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	sub, err := js.Conn().SubscribeSync("cmkd.status.acme.sealed")
	if err != nil {
		t.Fatal(err)
	}
	runRelay(t, st, js, "r1")
	publish(t, st, 0, 1)
	msg, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		t.Fatalf("no status event on cmkd.status.acme.sealed: %v", err)
	}
	ev, err := status.Decode(msg.Data)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "ev-0000" || msg.Header.Get("Nats-Msg-Id") != ev.ID || ev.Type != "io.cmkd.sealed" ||
		ev.Source != "cmkd/r1" || ev.Subject != "acme" || ev.Data["reason"] != "disabled" {
		t.Fatalf("status event %+v, header %v", ev, msg.Header)
	}
}

func TestNATSOutageLosesNothingAndDoublesNothing(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, -1, dir)
	clientURL := ns.ClientURL()
	js := jsFor(t, clientURL)
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	runRelay(t, st, js, "r1")
	publish(t, st, 0, 10)
	waitFor(t, js, 10)

	ns.Shutdown()
	ns.WaitForShutdown()
	publish(t, st, 10, 20) // state changes go on while NATS is down
	ns = startNATS(t, portOf(t, clientURL), dir)
	defer ns.Shutdown()

	got := waitFor(t, js, 30)
	if len(got) != 30 {
		t.Fatalf("%d distinct events in the stream, want 30", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("event %s is in the stream %d times", id, n)
		}
	}
}

func TestTwoRelaysPublishEachEventOnce(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	defer ns.Shutdown()
	js := jsFor(t, ns.ClientURL())
	path := filepath.Join(t.TempDir(), "db")
	st1, st2 := openStore(t, path), openStore(t, path)
	runRelay(t, st1, js, "r1")
	runRelay(t, st2, js, "r2")
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() { defer wg.Done(); publish(t, st1, i*50, 50) }()
	}
	wg.Wait()
	got := waitFor(t, js, 200)
	for id, n := range got {
		if n != 1 {
			t.Fatalf("event %s published %d times", id, n)
		}
	}
	if len(got) != 200 {
		t.Fatalf("%d events, want 200", len(got))
	}
}

func TestRepublishAfterCrashIsDeduplicated(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	defer ns.Shutdown()
	js := jsFor(t, ns.ClientURL())
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	if _, err := status.EnsureStream(t.Context(), js, status.Config{Instance: "x"}); err != nil {
		t.Fatal(err)
	}
	publish(t, st, 0, 3)
	// A relay published these, then died before marking them sent.
	entries, err := st.ClaimOutbox(t.Context(), "crashed", 10, time.Nanosecond)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		body, _ := status.Encode("crashed", e.Event)
		if _, err := js.Publish(t.Context(), status.Subject(e.Event.Tenant, e.Event.Kind), body, jetstream.WithMsgID(e.Event.ID)); err != nil {
			t.Fatal(err)
		}
	}
	runRelay(t, st, js, "r2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		again, err := st.ClaimOutbox(t.Context(), "probe", 10, time.Nanosecond)
		if err != nil {
			t.Fatal(err)
		}
		if len(again) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("relay did not mark the entries sent")
		}
		time.Sleep(25 * time.Millisecond)
	}
	got := collect(t, js)
	if len(got) != 3 {
		t.Fatalf("%d events in the stream, want 3", len(got))
	}
	for id, n := range got {
		if n != 1 {
			t.Fatalf("event %s is in the stream %d times", id, n)
		}
	}
}

func portOf(t *testing.T, raw string) int {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	p, err := strconv.Atoi(u.Port())
	if err != nil {
		t.Fatal(err)
	}
	return p
}
