package status_test

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
)

// openStore opens a SQLite store. The relay never calls Key Vault, so the
// kek client points nowhere.
func openStore(t *testing.T, path string) *store.Store {
	t.Helper()
	return storeOn(t, openBackend(t, path))
}

func openBackend(t *testing.T, path string) *sqlite.Backend {
	t.Helper()
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storeOn is a store on b.
func storeOn(t *testing.T, b store.Backend) *store.Store {
	t.Helper()
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

func newStore(t *testing.T) *store.Store {
	return openStore(t, filepath.Join(t.TempDir(), "cmkd.db"))
}

func startNATS(t *testing.T, port int, dir string) *server.Server {
	t.Helper()
	return natstest.Start(t, port, dir)
}

func jsFor(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	return natstest.JetStream(t, url)
}

// testConfig polls and retries fast, so tests wait for milliseconds.
func testConfig(name string) status.Config {
	return status.Config{Instance: name, CreateStream: true, Interval: 20 * time.Millisecond, Backoff: 20 * time.Millisecond}
}

// runRelay runs a relay until the test ends.
func runRelay(t *testing.T, st *store.Store, js jetstream.JetStream, cfg status.Config) *status.Relay {
	t.Helper()
	r, err := status.NewRelay(st, js, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay Run returned %v after its context ended", err)
		}
	})
	return r
}

func event(i int, tenant string, kind cmkd.Kind) cmkd.StatusEvent {
	return cmkd.StatusEvent{ID: fmt.Sprintf("ev-%04d", i), Kind: kind, Tenant: tenant,
		Reason: "disabled", Key: cmkd.MustParseKeyID("https://v.vault.azure.net/keys/k")}
}

// write adds events from..from+n-1 for tenant acme to the outbox.
func write(t *testing.T, st *store.Store, from, n int) {
	t.Helper()
	for i := from; i < from+n; i++ {
		if err := st.AppendOutbox(t.Context(), event(i, "acme", cmkd.KindSealed)); err != nil {
			t.Fatal(err)
		}
	}
}

// readAll reads the whole stream in order.
func readAll(t *testing.T, js jetstream.JetStream) []status.Received {
	t.Helper()
	var evs []status.Received
	err := status.Tail(t.Context(), js, status.TailOptions{}, func(e status.Received) error {
		evs = append(evs, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	s, err := js.Stream(t.Context(), status.DefaultStream)
	if err != nil {
		return 0
	}
	info, err := s.Info(t.Context())
	if err != nil {
		return 0
	}
	return info.State.Msgs
}

// waitStream waits until the stream holds n events and returns them.
func waitStream(t *testing.T, js jetstream.JetStream, n int) []status.Received {
	t.Helper()
	eventually.True(t, 20*time.Second, fmt.Sprintf("the stream holds %d events", n), func() bool { return streamMsgs(t, js) >= uint64(n) })
	return readAll(t, js)
}

// checkOnceEach fails unless evs are exactly ev-from..ev-(from+n-1), each once.
func checkOnceEach(t *testing.T, evs []status.Received, from, n int) {
	t.Helper()
	seen := map[string]int{}
	for _, e := range evs {
		seen[e.ID]++
	}
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("ev-%04d", i)
		if seen[id] != 1 {
			t.Errorf("event %s is in the stream %d times, want once", id, seen[id])
		}
	}
	if len(evs) != n {
		t.Errorf("the stream holds %d events, want %d", len(evs), n)
	}
}

// metric reads a counter or gauge from reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		m := mf.GetMetric()[0]
		if c := m.GetCounter(); c != nil {
			return c.GetValue()
		}
		if h := m.GetHistogram(); h != nil {
			return float64(h.GetSampleCount())
		}
		return m.GetGauge().GetValue()
	}
	t.Fatalf("metric %s not registered", name)
	return 0
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
