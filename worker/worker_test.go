package worker_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
	"github.com/cmkd-io/cmkd/store/storetest"
	"github.com/cmkd-io/cmkd/worker"
)

type env struct {
	t      *testing.T
	kv     *keyvault.Server
	az     *azkeys.Client
	kek    *kek.Client
	dbPath string
	key    cmkd.KeyID
}

func newEnv(t *testing.T) *env {
	t.Helper()
	h := storetest.NewHarness(t)
	return &env{t: t, kv: h.KV, az: h.AZ, kek: h.KEK, dbPath: filepath.Join(t.TempDir(), "cmkd.db"), key: h.Key}
}

// openStore opens the shared SQLite file, as one more process would.
func (e *env) openStore() *store.Store {
	e.t.Helper()
	b, err := sqlite.Open(e.t.Context(), sqlite.Config{Path: e.dbPath})
	if err != nil {
		e.t.Fatal(err)
	}
	st, err := store.New(store.Config{Backend: b, KEK: e.kek})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { st.Close() })
	return st
}

func (e *env) worker(st *store.Store, name string, tune func(*worker.Config)) *worker.Worker {
	e.t.Helper()
	rec, err := handlers.New(handlers.Config{Store: st, KEK: e.kek, Instance: name})
	if err != nil {
		e.t.Fatal(err)
	}
	cfg := worker.Config{Store: st, Reconciler: rec, Limits: e.kek, Instance: name, ProbeInterval: time.Hour}
	if tune != nil {
		tune(&cfg)
	}
	w, err := worker.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return w
}

// start runs w until the test ends.
func start(t *testing.T, w *worker.Worker) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker run: %v", err)
		}
	})
}

func (e *env) addTenant(st *store.Store, id string) {
	e.t.Helper()
	if _, err := st.AddTenant(e.t.Context(), id, e.key); err != nil {
		e.t.Fatal(err)
	}
	if err := st.Put(e.t.Context(), id, "k", []byte("v")); err != nil {
		e.t.Fatal(err)
	}
}

func TestDuplicateEventsCoalesce(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	e.addTenant(st, "acme")
	addr := freeAddr(t)
	w := e.worker(st, "w1", func(c *worker.Config) { c.HTTPAddr = addr })
	start(t, w)
	eventually.True(t, 15*time.Second, "first reconcile pass", func() bool { return ready(addr) })
	e.kv.ResetCalls()

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ev := events.Event{ID: "dup", Type: events.TypeKeyNewVersionCreated, Key: e.key}
			if err := w.Handle(t.Context(), ev); err != nil {
				t.Errorf("handle %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	// One probe reads the key once; 50 events may cost two probes at most
	// (one running when the burst arrived, one for the burst).
	if n := e.kv.Calls()["getKey"]; n < 1 || n > 2 {
		t.Fatalf("50 duplicate events made %d probes, want 1 or 2", n)
	}
}

func TestProbeFindsDisableWithoutAnEvent(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	e.addTenant(st, "acme")
	start(t, e.worker(st, "w1", func(c *worker.Config) { c.ProbeInterval = 100 * time.Millisecond }))
	_, err := e.az.UpdateKey(t.Context(), "cmk", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 15*time.Second, "the tenant sealed", func() bool {
		_, err := st.Get(t.Context(), "acme", "k")
		return errors.Is(err, store.ErrSealed)
	})
}

func TestLeaseSerializesReplicas(t *testing.T) {
	e := newEnv(t)
	st1, st2 := e.openStore(), e.openStore()
	e.addTenant(st1, "acme")
	w1, w2 := e.worker(st1, "w1", nil), e.worker(st2, "w2", nil)
	// Without Run, Reconcile goes straight to the lease: two replicas at
	// once either both finish in turn or one is told the other is busy.
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, w := range []*worker.Worker{w1, w2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				if _, err := w.Reconcile(t.Context(), handlers.Request{Key: e.key}); err != nil && !errors.Is(err, worker.ErrBusy) {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	l, err := st1.AcquireLease(t.Context(), e.key.LeaseName(), "checker", time.Second)
	if err != nil {
		t.Fatalf("lease left held after both replicas finished: %v", err)
	}
	if l.Token < 2 {
		t.Fatalf("lease token %d: the replicas did not take the lease", l.Token)
	}
}

func TestSealBroadcastDropsOtherProcessesCaches(t *testing.T) {
	e := newEnv(t)
	ns := startNATS(t)
	nc1, nc2 := connect(t, ns), connect(t, ns)
	reader, sealer := e.openStore(), e.openStore()
	e.addTenant(reader, "acme")
	if _, err := reader.Get(t.Context(), "acme", "k"); err != nil { // warm reader's cache
		t.Fatal(err)
	}
	start(t, e.worker(reader, "reader", func(c *worker.Config) { c.NATS = nc1 }))
	sub, err := nc1.SubscribeSync(worker.SealSubject("acme"))
	if err != nil {
		t.Fatal(err)
	}
	// Subscriptions register asynchronously: make sure the server has it
	// before the other connection publishes.
	if err := nc1.Flush(); err != nil {
		t.Fatal(err)
	}
	broadcast := worker.Broadcaster(nc2, nil)

	if err := sealer.Seal(t.Context(), "acme", "disabled", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	broadcast("acme")
	if _, err := sub.NextMsg(5 * time.Second); err != nil {
		t.Fatalf("seal broadcast not seen: %v", err)
	}
	_, err = reader.Get(t.Context(), "acme", "k")
	var se *store.SealedError
	if !errors.As(err, &se) || se.Reason != "disabled" {
		t.Fatalf("read in another process after seal: %v, want SealedError(disabled)", err)
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	e.addTenant(st, "acme")
	addr := freeAddr(t)
	start(t, e.worker(st, "w1", func(c *worker.Config) { c.HTTPAddr = addr }))
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	eventually.True(t, 15*time.Second, "/readyz", func() bool { return ready(addr) })
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	_, body := get("/metrics")
	for _, m := range []string{"cmkd_probes_total", "cmkd_tenants{state=\"active\"} 1", "cmkd_reconcile_seconds"} {
		if !strings.Contains(body, m) {
			t.Fatalf("/metrics lacks %q", m)
		}
	}
}

func startNATS(t *testing.T) *server.Server {
	t.Helper()
	return natstest.Start(t, -1, "")
}

func connect(t *testing.T, ns *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Events are hints anybody who can post one can send: events naming keys no
// tenant uses leave nothing behind (no lease rows, no status rows, no Key
// Vault call), and a flood of events for a key in use costs one check per
// EventMinInterval, not one per event.
func TestEventFloodsCostLittle(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	e.addTenant(st, "acme")
	w := e.worker(st, "w1", func(c *worker.Config) { c.EventMinInterval = 500 * time.Millisecond })
	start(t, w)
	e.kv.ResetCalls()
	for i := range 300 {
		ev := events.Event{ID: fmt.Sprint("probe-", i), Type: events.TypeProbe,
			Key: cmkd.MustParseKeyID(fmt.Sprintf("%s/keys/random-%d", e.kv.URL(), i))}
		if err := w.Handle(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if ls, err := st.Leases(t.Context()); err != nil || len(ls) != 0 {
		t.Fatalf("leases after 300 events for unknown keys: %+v, %v; want none", ls, err)
	}
	if n := e.kv.Calls()["getKey"]; n != 0 {
		t.Fatalf("300 events for unknown keys made %d Key Vault probes, want none", n)
	}

	flood := time.Now()
	for i := 0; time.Since(flood) < 2*time.Second; i++ {
		ev := events.Event{ID: fmt.Sprint("flood-", i), Type: events.TypeKeyNewVersionCreated, Key: e.key}
		if err := w.Handle(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond) // a steady stream, not one burst
	}
	// Two seconds at one check per 500 ms: about four, and a last one the
	// flood left scheduled.
	if n := e.kv.Calls()["getKey"]; n < 2 || n > 7 {
		t.Fatalf("a 2 s flood of events for one key made %d probes, want about 4", n)
	}
	// A released lease leaves no row (the last check may still run).
	eventually.NoError(t, 10*time.Second, "no lease rows left", func() (bool, error) {
		ls, err := st.Leases(t.Context())
		return len(ls) == 0, err
	})
}

// Anyone who may publish on NATS can send a seal broadcast. It only asks
// processes to drop their cached DEKs of a tenant the store says is
// sealed: a forged one for an active tenant changes nothing (no cache
// wiped, so no extra Key Vault unwraps), a real one still wipes at once.
func TestForgedSealBroadcastIsIgnored(t *testing.T) {
	e := newEnv(t)
	ns := startNATS(t)
	nc := connect(t, ns)
	reader := e.openStore()
	e.addTenant(reader, "acme")
	if _, err := reader.Get(t.Context(), "acme", "k"); err != nil { // warm the cache
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	start(t, e.worker(reader, "reader", func(c *worker.Config) { c.NATS, c.Registerer, c.Gatherer = nc, reg, reg }))
	forger := worker.Broadcaster(connect(t, ns), nil)
	e.kv.ResetCalls()
	forger("acme")
	eventually.True(t, 10*time.Second, "the forged broadcast counted", func() bool {
		return metricSum(t, reg, "cmkd_seal_broadcasts_ignored_total") >= 1
	})
	if _, err := reader.Get(t.Context(), "acme", "k"); err != nil {
		t.Fatal(err)
	}
	if n := e.kv.Calls()["unwrapKey"]; n != 0 {
		t.Fatalf("a forged seal broadcast wiped the cache: %d unwraps to read again, want 0", n)
	}
}

// metricSum is the sum of every series of the counter or gauge name.
func metricSum(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}

// An event that comes less than EventMinInterval after its key's last
// check is acknowledged at once; the check it asks for runs at the key's
// next slot, and cmkd_checks_pending shows it until it has.
func TestDeferredEventIsAnsweredByALaterCheck(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	e.addTenant(st, "acme")
	reg := prometheus.NewRegistry()
	w := e.worker(st, "w1", func(c *worker.Config) {
		c.EventMinInterval, c.Registerer, c.Gatherer = 2*time.Second, reg, reg
	})
	start(t, w)
	ev := events.Event{ID: "first", Type: events.TypeKeyNewVersionCreated, Key: e.key}
	if err := w.Handle(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	e.kv.ResetCalls()
	ev.ID = "second"
	if err := w.Handle(t.Context(), ev); err != nil {
		t.Fatal(err)
	}
	if n := e.kv.Calls()["getKey"]; n != 0 {
		t.Fatalf("the second event within EventMinInterval probed at once (%d probes), want it deferred", n)
	}
	if n := metricSum(t, reg, "cmkd_checks_pending"); n != 1 {
		t.Fatalf("cmkd_checks_pending = %v after a deferred event, want 1", n)
	}
	eventually.True(t, 10*time.Second, "the deferred check ran", func() bool {
		return metricSum(t, reg, "cmkd_checks_pending") == 0 && e.kv.Calls()["getKey"] >= 1
	})
}

// An event whose check cannot ask Key Vault (it answers 503) is not
// acknowledged: Handle asks for a retry, so that the source brings the
// event back (Event Grid retries a 503, a namespace release redelivers)
// instead of leaving the rotation it announced to the next probe. Once Key
// Vault answers, the same event is handled.
func TestEventRetriedWhileKeyVaultDoesNotAnswer(t *testing.T) {
	e := newEnv(t)
	st := e.openStore()
	e.addTenant(st, "acme")
	w := e.worker(st, "w1", nil)
	start(t, w)
	e.kv.SetFaults(keyvault.Faults{ErrorRate: 1, Methods: []string{http.MethodGet}})
	ev := events.Event{ID: "rotated", Type: events.TypeKeyNewVersionCreated, Key: e.key}
	err := w.Handle(t.Context(), ev)
	if v, _ := events.Settle(err); v != events.Retry {
		t.Fatalf("handle while Key Vault answers 503: %v (verdict %v), want a retry", err, v)
	}
	e.kv.SetFaults(keyvault.Faults{})
	if err := w.Handle(t.Context(), ev); err != nil {
		t.Fatalf("handle once Key Vault answers: %v", err)
	}
}
