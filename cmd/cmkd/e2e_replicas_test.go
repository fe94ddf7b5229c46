package main

// Scale-out end to end: three `cmkd run` processes (the built binary) share
// one PostgreSQL schema and one nats-server; the Key Vault and Event Grid
// emulators stand in for Azure and are driven through the real SDKs.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/eventgrid"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
)

// The replicas' timings: probes every second, so "within probe interval
// + 1 s" is two seconds; a dead replica's key lease lapses after
// replicaLeaseTTL, and the events it held come back after
// replicaRedelivery (Event Grid lock, JetStream ack wait).
const (
	replicaInterval   = time.Second
	replicaLeaseTTL   = 5 * time.Second
	replicaRedelivery = 5 * time.Second
)

// replicaCluster is what the replicas share, and the replicas.
type replicaCluster struct {
	t        *testing.T
	dir      string
	schema   pgtest.Schema
	kv       *keyvault.Server
	kvCA     string
	eg       *eventgrid.Server
	egCA     string
	natsURL  string
	js       jetstream.JetStream
	replicas []*devProc
}

func startReplicaCluster(t *testing.T, n int) *replicaCluster {
	t.Helper()
	c := &replicaCluster{t: t, schema: pgtest.NewSchema(t), dir: t.TempDir()}
	dir := c.dir
	c.natsURL = natstest.Start(t, -1, filepath.Join(dir, "nats")).ClientURL()
	c.js = natstest.JetStream(t, c.natsURL)
	c.egCA, c.kvCA = filepath.Join(dir, "eventgrid-ca.pem"), filepath.Join(dir, "keyvault-ca.pem")
	log := slog.New(slog.DiscardHandler)
	eg, err := eventgrid.Start(eventgrid.Config{
		CAFile: c.egCA, Key: devEGKey, Topics: map[string][]string{devTopic: {devSubscription}},
		LockDuration: replicaRedelivery,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eg.Close() })
	// The throttle is lifted: this test is about sharing work and
	// surviving a replica, not about Key Vault's rate (the benchmarks are).
	kv, err := keyvault.Start(keyvault.Config{
		CAFile: c.kvCA, Token: devToken, VaultName: "replicas", ThrottleLimit: -1, PurgeProtection: true,
		Sink: forwardTo(eg, devTopic, log),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	c.eg, c.kv = eg, kv

	// The schema is migrated once, as an operator would, by `cmkd
	// migrate`; the replicas are not allowed to.
	for i := range n {
		c.writeConfig(i)
	}
	for range 2 {
		out := c.cli(0, "migrate")
		if want := fmt.Sprintf("PostgreSQL schema %s is at version %d", c.schema.Name, postgres.SchemaVersion); !strings.Contains(out, want) {
			t.Fatalf("cmkd migrate printed %q, want %q", out, want)
		}
	}
	return c
}

// configDir is replica i's directory; its cmkd.yaml is what devProc reads.
func (c *replicaCluster) configDir(i int) string {
	return filepath.Join(c.dir, "replica-"+strconv.Itoa(i))
}

func (c *replicaCluster) writeConfig(i int) {
	t := c.t
	dir := c.configDir(i)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	no := false
	cfg := &Config{
		Instance: fmt.Sprintf("replica-%d", i),
		Store: StoreConfig{Driver: "postgres", DSN: c.schema.URL, Schema: c.schema.Name, Migrate: &no,
			MaxConns: 4, StatementTimeout: 10 * time.Second},
		NATS: NATSConfig{URL: c.natsURL, CreateStreams: true},
		KeyVault: KVConfig{Credential: "static", Token: devToken, CAFile: c.kvCA, Emulator: true,
			Vaults: []string{c.kv.URL()}, InitialRate: 1000},
		Sources: Sources{
			EventGrid: EventGridSource{Endpoint: c.eg.URL(), Topic: devTopic, Subscription: devSubscription,
				Key: devEGKey, CAFile: c.egCA},
			Queue: QueueSource{Enabled: true, AckWait: replicaRedelivery},
		},
		Worker: WorkerConf{ProbeInterval: replicaInterval, LeaseTTL: replicaLeaseTTL},
		HTTP:   HTTPConfig{Listen: addr},
		Dev:    DevConfig{KeyVault: c.kv.URL(), Vaults: []string{c.kv.URL()}},
	}
	if err := writeConfig(filepath.Join(dir, "cmkd.yaml"), cfg); err != nil {
		t.Fatal(err)
	}
}

// start starts `cmkd run` for every replica and waits until each is ready.
func (c *replicaCluster) start(n int) {
	c.t.Helper()
	for i := range n {
		dir := c.configDir(i)
		d := &devProc{t: c.t, bin: binary(c.t), dir: dir,
			args: []string{"run", "--config", filepath.Join(dir, "cmkd.yaml"), "--log", "json"}}
		d.start()
		c.t.Cleanup(d.stop)
		c.replicas = append(c.replicas, d)
	}
}

// cli runs a command with replica i's config (before or after it runs).
func (c *replicaCluster) cli(i int, args ...string) string {
	c.t.Helper()
	d := &devProc{t: c.t, bin: binary(c.t), dir: c.configDir(i)}
	return d.must("", args...)
}

// alive is the replicas not killed.
func (c *replicaCluster) alive() []*devProc {
	var out []*devProc
	for _, d := range c.replicas {
		select {
		case <-d.exited:
		default:
			out = append(out, d)
		}
	}
	return out
}

// openStore opens the shared schema from the test, as another process
// would, with a Key Vault client of its own and a cold DEK cache.
func (c *replicaCluster) openStore(dekMaxEncryptions int64, params ...string) (*store.Store, *kek.Client) {
	t := c.t
	t.Helper()
	pool, err := loadCA(c.kvCA)
	if err != nil {
		t.Fatal(err)
	}
	k, err := kek.New(kek.Config{Credential: kek.StaticToken(devToken), RootCAs: pool,
		DisableChallengeResourceVerification: true, Policy: kek.VaultPolicy{Vaults: []string{c.kv.URL()}, AllowLoopback: true},
		Limiter: kek.LimiterConfig{InitialRate: 1000}})
	if err != nil {
		t.Fatal(err)
	}
	dsn := c.schema.URL
	for i := 0; i+1 < len(params); i += 2 {
		dsn = pgtest.With(dsn, params[i], params[i+1])
	}
	b, err := postgres.Open(t.Context(), postgres.Config{DSN: dsn, Schema: c.schema.Name, NoMigrate: true, MaxConns: 8})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.New(store.Config{Backend: b, KEK: k, DEKMaxEncryptions: dekMaxEncryptions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, k
}

func (c *replicaCluster) azkeys() *azkeys.Client {
	c.t.Helper()
	kc, err := c.kv.Client(staticToken(devToken), policy.RetryOptions{})
	if err != nil {
		c.t.Fatal(err)
	}
	return kc
}

// enqueue puts events on CMKD_EVENTS as the webhook in queue mode would:
// one Event Grid delivery body per message.
func (c *replicaCluster) enqueue(evs ...*messaging.CloudEvent) {
	c.t.Helper()
	for _, ev := range evs {
		body, err := json.Marshal(ev)
		if err != nil {
			c.t.Fatal(err)
		}
		// The replicas create the stream as they start.
		eventually.NoError(c.t, 10*time.Second, "CMKD_EVENTS to take an event", func() (bool, error) {
			err := natsq.Enqueue(c.t.Context(), c.js, "", body)
			if errors.Is(err, jetstream.ErrNoStreamResponse) {
				return false, nil
			}
			return err == nil, err
		})
	}
}

// queued is the events on CMKD_EVENTS not acknowledged yet (work-queue
// retention: an acknowledged event leaves the stream).
func (c *replicaCluster) queued() int {
	c.t.Helper()
	s, err := c.js.Stream(c.t.Context(), natsq.DefaultStream)
	if err != nil {
		c.t.Fatal(err)
	}
	info, err := s.Info(c.t.Context())
	if err != nil {
		c.t.Fatal(err)
	}
	return int(info.State.Msgs)
}

var (
	eventsAckedRE = regexp.MustCompile(`(?m)^cmkd_events_total\{outcome="ack",source="(\w+)",type="[^"]*"\} (\d+)$`)
)

// acked sums a replica's cmkd_events_total{outcome="ack"} by source.
func acked(t *testing.T, d *devProc) map[string]int {
	t.Helper()
	got := map[string]int{}
	for _, m := range eventsAckedRE.FindAllStringSubmatch(scrape(t, d), -1) {
		n, _ := strconv.Atoi(m[2])
		got[m[1]] += n
	}
	return got
}

func scrape(t *testing.T, d *devProc) string {
	t.Helper()
	resp, err := http.Get("http://" + d.cfg.HTTP.Listen + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(body)
}

// settled waits until both sources have handed out every event and every
// one was acknowledged, then returns the acknowledgements summed over the
// live replicas plus base (what dead ones had counted).
func (c *replicaCluster) settled(base map[string]int, want map[string]int) map[string]int {
	c.t.Helper()
	var sum map[string]int
	eventually.True(c.t, 60*time.Second, fmt.Sprintf("events %v acknowledged across the replicas", want), func() bool {
		if c.eg.Pending(devTopic, devSubscription) > 0 || c.queued() > 0 {
			return false
		}
		sum = map[string]int{}
		for k, v := range base {
			sum[k] += v
		}
		for _, d := range c.alive() {
			for k, v := range acked(c.t, d) {
				sum[k] += v
			}
		}
		return sum["eventgrid"] >= want["eventgrid"] && sum["queue"] >= want["queue"]
	})
	if dl := c.eg.DeadLetters(devTopic, devSubscription); len(dl) > 0 {
		c.t.Fatalf("%d events dead-lettered in Event Grid: %+v", len(dl), dl)
	}
	return sum
}

// replicaScale is the size of TestE2EReplicas: the (5 keys, 100
// tenants, 10,000 DEKs) by default; CMKD_E2E_REPLICAS_DEKS sets the DEKs
// per tenant (at least 5).
func replicaScale(t *testing.T) (tenants, perTenant int) {
	tenants, perTenant = 100, 100
	if s := os.Getenv("CMKD_E2E_REPLICAS_DEKS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 5 {
			t.Fatalf("CMKD_E2E_REPLICAS_DEKS=%q: want a number of DEKs per tenant, at least 5", s)
		}
		perTenant = n
	}
	return tenants, perTenant
}

// records per tenant; each has a DEK of its own, the other DEKs are seeded.
const replicaRecords = 5

// TestE2EReplicas: three replicas rotate five keys' 10,000 DEKs; the one
// holding the busiest key's lease is killed with SIGKILL mid-rewrap and the
// others finish its work; every DEK ends under its key's new version,
// every record reads back byte-identical, and each tenant's
// rewrap.completed and version.retired reach CMKD_STATUS exactly once.
// Events come in through Event Grid and CMKD_EVENTS, and each is handled by
// one replica; one killed while holding events loses none. A key disabled
// then is refused by every surviving replica within the probe interval
// + 1 s.
func TestE2EReplicas(t *testing.T) {
	if testing.Short() {
		t.Skip("10,000 DEKs and three processes: skipped with -short")
	}
	start := time.Now()
	c := startReplicaCluster(t, 3)
	tenants, perTenant := replicaScale(t)

	// Five keys; key-0 carries 40 % of the tenants, the others 15 % each.
	kc := c.azkeys()
	keys := make([]cmkd.KeyID, 5)
	for i := range keys {
		name := fmt.Sprintf("key-%d", i)
		if _, err := kc.CreateKey(t.Context(), name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil); err != nil {
			t.Fatal(err)
		}
		keys[i] = cmkd.MustParseKeyID(c.kv.URL() + "/keys/" + name)
	}
	keyOf := func(tenant int) int {
		if tenant < tenants*40/100 {
			return 0
		}
		return 1 + tenant%4
	}
	// A new DEK for every record. Setup commits without waiting for the
	// disk: 10,000 commits would otherwise take most of the test's time.
	// The replicas commit durably.
	st, k := c.openStore(1, "synchronous_commit", "off")
	want := map[[2]string][]byte{}
	var mu sync.Mutex
	forTenants(t, tenants, func(id string) error {
		i, _ := strconv.Atoi(id[1:])
		if _, err := st.AddTenant(t.Context(), id, keys[keyOf(i)]); err != nil {
			return err
		}
		for j := range replicaRecords { // the first uses the DEK AddTenant made
			v := append(recordValue(id, j), 0x00, 0xff, byte(j)) // binary, not text
			if err := st.Put(t.Context(), id, fmt.Sprintf("r%d", j), v); err != nil {
				return err
			}
			mu.Lock()
			want[[2]string{id, fmt.Sprintf("r%d", j)}] = v
			mu.Unlock()
		}
		seedDEKs(t, st, k, id, keys[keyOf(i)], perTenant-replicaRecords)
		return nil
	})
	perKey := map[cmkd.KeyID]int{}
	for i := range tenants {
		perKey[keys[keyOf(i)]] += perTenant
	}
	for _, key := range keys {
		if counts, err := st.VersionCounts(t.Context(), key); err != nil || total(counts) != perKey[key] {
			t.Fatalf("%s: seeded %v DEKs (%v), want %d", key, counts, err, perKey[key])
		}
	}
	t.Logf("set up %d tenants, %d DEKs in %s", tenants, tenants*perTenant, time.Since(start).Round(time.Millisecond))

	c.start(3)
	t.Logf("replicas ready after %s", time.Since(start).Round(time.Millisecond))

	// Rotate all five keys: Key Vault raises KeyNewVersionCreated through
	// Event Grid; the same news arrives on CMKD_EVENTS too.
	rotateStart := time.Now()
	v2 := map[cmkd.KeyID]string{}
	var queueEvents []*messaging.CloudEvent
	for i, key := range keys {
		resp, err := kc.RotateKey(t.Context(), key.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		v2[key] = strings.ToLower(resp.Key.KID.Version())
		queueEvents = append(queueEvents, keyVaultEvent(t, fmt.Sprintf("queue-rotate-%d", i), string(*resp.Key.KID), key.Name, resp.Key.KID.Version()))
	}
	c.enqueue(queueEvents...)
	// Key Vault raised one event per creation and one per rotation.
	events := map[string]int{"eventgrid": 2 * len(keys), "queue": len(queueEvents)}
	got := c.settled(nil, events)
	if got["eventgrid"] != events["eventgrid"] || got["queue"] != events["queue"] {
		t.Fatalf("events acknowledged across the replicas %v, want each once: %v", got, events)
	}

	// Kill the replica holding the busiest key's lease in the middle of
	// its rewrap.
	busiest := keys[0]
	moved := waitMoved(t, st, busiest, v2[busiest], func(n int) bool { return n >= perKey[busiest]/10 }, 120*time.Second)
	victim := c.leaseHolder(st, busiest)
	if victim == nil {
		t.Fatalf("no replica holds %s's lease while it is rewrapped", busiest)
	}
	victim.kill9()
	killedAt := time.Now()
	atKill, _ := st.VersionCounts(t.Context(), busiest)
	t.Logf("killed %s holding %s's lease with %d of %d DEKs moved, %s after the rotation",
		victim.cfg.Instance, busiest.Name, atKill[v2[busiest]], perKey[busiest], killedAt.Sub(rotateStart).Round(time.Millisecond))
	if atKill[v2[busiest]] == perKey[busiest] || moved == perKey[busiest] {
		t.Fatal("the busiest key's rewrap finished before the kill; nothing was tested")
	}

	// The others take the key over once the lease lapses, and finish.
	var taker *devProc
	eventually.True(t, 60*time.Second, "another replica to take "+busiest.Name+" over", func() bool {
		taker = c.leaseHolder(st, busiest)
		return taker != nil && taker != victim
	})
	takenOver := time.Since(killedAt)
	resumed := waitMoved(t, st, busiest, v2[busiest], func(n int) bool { return n > atKill[v2[busiest]] }, 60*time.Second)
	t.Logf("%s took %s over %s after the kill (lease TTL %s, probe interval %s); moving again (%d) %s after the kill",
		taker.cfg.Instance, busiest.Name, takenOver.Round(time.Millisecond), replicaLeaseTTL, replicaInterval,
		resumed, time.Since(killedAt).Round(time.Millisecond))
	// The lease lapses at most a TTL after the kill; the next check after
	// that, within a probe interval, takes it (2 s for a loaded machine).
	if bound := replicaLeaseTTL + replicaInterval + 2*time.Second; takenOver > bound {
		t.Errorf("%s taken over %s after its holder died, want within %s", busiest.Name, takenOver, bound)
	}
	for _, key := range keys {
		waitMoved(t, st, key, v2[key], func(n int) bool { return n == perKey[key] }, 120*time.Second)
	}
	t.Logf("every DEK under its key's new version %s after the rotation (%s after the kill)",
		time.Since(rotateStart).Round(time.Millisecond), time.Since(killedAt).Round(time.Millisecond))
	if h := c.leaseHolder(st, busiest); h == victim {
		t.Fatalf("%s still holds the lease of %s after its death", victim.cfg.Instance, busiest)
	}
	for _, key := range keys {
		if counts, _ := st.VersionCounts(t.Context(), key); len(counts) != 1 || counts[v2[key]] != perKey[key] {
			t.Fatalf("%s: DEKs by version %v, want all %d under %s", key.Name, counts, perKey[key], v2[key])
		}
	}
	fresh, _ := c.openStore(0) // a cold cache: every DEK unwraps in Key Vault
	readAllBytes(t, fresh, want)
	c.statusOnce(tenants, keys, keyOf, v2)

	// Events held by replicas that die come back. Both survivors are
	// frozen, events sent to both sources until every one is handed out
	// (to a frozen replica: nothing else runs), then both are killed and
	// started again: each event they held must be handled once by the new
	// processes.
	survivors := c.alive()
	for _, d := range survivors {
		if err := d.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
	}
	var egEvents, qEvents []*messaging.CloudEvent
	for i, key := range keys {
		kid := key.At(v2[key])
		egEvents = append(egEvents, keyVaultEvent(t, fmt.Sprintf("eg-held-%d", i), kid.String(), key.Name, v2[key]))
		qEvents = append(qEvents, keyVaultEvent(t, fmt.Sprintf("queue-held-%d", i), kid.String(), key.Name, v2[key]))
	}
	c.sendEvents(egEvents...)
	c.enqueue(qEvents...)
	eventually.NoError(t, 30*time.Second, "every event handed to a frozen replica", func() (bool, error) {
		ci, err := c.js.Consumer(t.Context(), natsq.DefaultStream, natsq.DefaultDurable)
		if err != nil {
			return false, err
		}
		info, err := ci.Info(t.Context())
		if err != nil {
			return false, err
		}
		return c.eg.Locked(devTopic, devSubscription) == len(egEvents) &&
			info.NumAckPending == len(qEvents) && info.NumPending == 0, nil
	})
	heldAt := time.Now()
	for _, d := range survivors {
		d.kill9()
		d.start()
	}
	restarted := time.Now()
	held := map[string]int{"eventgrid": len(egEvents), "queue": len(qEvents)}
	got = c.settled(nil, held)
	t.Logf("%v events held by killed replicas handled by their successors %s after the kill", held,
		time.Since(heldAt).Round(time.Millisecond))
	if got["eventgrid"] != held["eventgrid"] || got["queue"] != held["queue"] {
		t.Fatalf("held events acknowledged after the kill %v, want each once: %v", got, held)
	}

	// A key disabled: the surviving replica refuses its tenants' reads
	// within the probe interval + 1 s. The replicas serve no reads
	// themselves; a read is `cmkd get` with the replica's own config and
	// a store with a warm cache, both on the shared database, whose seal
	// check is part of every read.
	var onKey1 []string
	for i := range tenants {
		if keyOf(i) == 1 {
			onKey1 = append(onKey1, fmt.Sprintf("t%03d", i))
		}
	}
	c.disabledRefused(st, keys[1], onKey1, want)
	// How often the replicas together checked each key: each replica
	// schedules every key, and the lease serializes, not deduplicates.
	checks := 0
	for _, d := range c.alive() {
		for _, m := range checksRE.FindAllStringSubmatch(scrape(t, d), -1) {
			if m[1] != "busy" {
				n, _ := strconv.Atoi(m[2])
				checks += n
			}
		}
	}
	perInterval := float64(checks) / float64(len(keys)) / (time.Since(restarted).Seconds() / replicaInterval.Seconds())
	t.Logf("%d replicas checked each key %.1f times per probe interval", len(c.alive()), perInterval)
	t.Logf("whole scenario: %s", time.Since(start).Round(time.Millisecond))
}

var checksRE = regexp.MustCompile(`(?m)^cmkd_probes_total\{outcome="(\w+)"\} (\d+)$`)

// leaseHolder is the live replica holding key's lease, or nil.
func (c *replicaCluster) leaseHolder(st *store.Store, key cmkd.KeyID) *devProc {
	c.t.Helper()
	ls, err := st.Leases(c.t.Context())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, l := range ls {
		if l.Name != key.LeaseName() || l.Expires.Before(time.Now()) {
			continue
		}
		for _, d := range c.replicas {
			if strings.HasPrefix(l.Holder, d.cfg.Instance+"/") {
				return d
			}
		}
	}
	return nil
}

func (c *replicaCluster) sendEvents(evs ...*messaging.CloudEvent) {
	c.t.Helper()
	d := &devProc{t: c.t, cfg: &Config{Sources: Sources{EventGrid: EventGridSource{
		Endpoint: c.eg.URL(), Topic: devTopic, Key: devEGKey, CAFile: c.egCA}}}}
	d.sendEvents(c.t, evs...)
}

// statusOnce waits for every tenant's rewrap.completed and version.retired
// on CMKD_STATUS and checks each came once, naming the new version.
func (c *replicaCluster) statusOnce(tenants int, keys []cmkd.KeyID, keyOf func(int) int, v2 map[cmkd.KeyID]string) {
	t := c.t
	t.Helper()
	var evs []status.Received
	var missing []string
	defer func() {
		if t.Failed() && len(missing) > 0 {
			t.Logf("CMKD_STATUS lacks %d events: %v", len(missing), missing)
		}
	}()
	eventually.True(t, 60*time.Second, "rewrap.completed and version.retired for every tenant", func() bool {
		evs = statusEvents(t, c.js)
		missing = missing[:0]
		for i := range tenants {
			id := fmt.Sprintf("t%03d", i)
			for _, kind := range []string{"rewrap.completed", "version.retired"} {
				if count(t, evs, id, kind) == 0 {
					missing = append(missing, id+" "+kind)
				}
			}
		}
		return len(missing) == 0
	})
	for i := range tenants {
		id := fmt.Sprintf("t%03d", i)
		for _, kind := range []string{"rewrap.completed", "version.retired"} {
			if n := count(t, evs, id, kind); n != 1 {
				t.Fatalf("%s: %d %s events on CMKD_STATUS, want exactly 1", id, n, kind)
			}
		}
		for _, e := range evs {
			if e.Tenant == id && e.Kind == cmkd.KindRewrapCompleted && e.Version != v2[keys[keyOf(i)]] {
				t.Fatalf("%s: rewrap.completed names version %s, want %s", id, e.Version, v2[keys[keyOf(i)]])
			}
		}
	}
}

// readAllBytes reads every record through st and compares it byte for byte.
func readAllBytes(t *testing.T, st *store.Store, want map[[2]string][]byte) {
	t.Helper()
	var mu sync.Mutex
	byTenant := map[string][][2]string{}
	for k := range want {
		byTenant[k[0]] = append(byTenant[k[0]], k)
	}
	forTenants(t, len(byTenant), func(id string) error {
		mu.Lock()
		ks := byTenant[id]
		mu.Unlock()
		for _, k := range ks {
			got, err := st.Get(t.Context(), k[0], k[1])
			if err != nil || string(got) != string(want[k]) {
				return fmt.Errorf("record %s/%s: %q, %v; want %q", k[0], k[1], got, err, want[k])
			}
		}
		return nil
	})
}

// disabledRefused disables key in Key Vault and measures, for every
// surviving replica, how long until a read of each of the key's tenants is
// refused as sealed.
func (c *replicaCluster) disabledRefused(warm *store.Store, key cmkd.KeyID, ids []string, want map[[2]string][]byte) {
	t := c.t
	t.Helper()
	for _, id := range ids { // warm the cache: the seal must not hide behind it
		if got, err := warm.Get(t.Context(), id, "r0"); err != nil || string(got) != string(want[[2]string{id, "r0"}]) {
			t.Fatalf("%s/r0 before the disable: %q, %v", id, got, err)
		}
	}
	survivors := c.alive()
	start := time.Now()
	survivors[0].must("", "vault", "disable", key.Name)
	bound := replicaInterval + time.Second
	refused := map[string]time.Duration{}
	eventually.NoError(t, 30*time.Second, "every survivor and the warm store to refuse reads of "+key.Name+"'s tenants", func() (bool, error) {
		for _, d := range survivors {
			if _, ok := refused[d.cfg.Instance]; ok {
				continue
			}
			_, errs, code := d.cli("", "get", ids[len(ids)-1], "r0")
			switch code {
			case exitSealed:
				if !strings.Contains(errs, "(disabled)") {
					return false, fmt.Errorf("%s: cmkd get exited 3 without naming the reason: %s", d.cfg.Instance, errs)
				}
				refused[d.cfg.Instance] = time.Since(start)
			case exitOK:
			case exitError:
				// A cold read that reaches Key Vault before the seal is
				// refused there: not yet the seal this waits for.
				if !strings.Contains(errs, "KeyDisabled") {
					return false, fmt.Errorf("%s: cmkd get exited 1: %s", d.cfg.Instance, errs)
				}
			default:
				return false, fmt.Errorf("%s: cmkd get exited %d: %s", d.cfg.Instance, code, errs)
			}
		}
		if _, ok := refused["warm store"]; !ok {
			sealed := 0
			for _, id := range ids {
				_, err := warm.Get(t.Context(), id, "r0")
				if errors.Is(err, store.ErrSealed) {
					sealed++
				} else if err != nil {
					return false, err
				}
			}
			if sealed == len(ids) {
				refused["warm store"] = time.Since(start)
			}
		}
		return len(refused) == len(survivors)+1, nil
	})
	t.Logf("%s disabled: reads of its %d tenants refused after %v (bound %s)", key.Name, len(ids), refused, bound)
	for who, took := range refused {
		if took > bound {
			t.Errorf("%s refused reads %s after the disable, want within %s", who, took, bound)
		}
	}
}

// TestE2EDevOnPostgres: `cmkd dev --store postgres://…` runs the sandbox on
// an existing PostgreSQL database, and every command works against it.
func TestE2EDevOnPostgres(t *testing.T) {
	t.Parallel()
	s := pgtest.NewSchema(t)
	d := startDev(t, t.TempDir(), "--store", s.URL, "--store-schema", s.Name)
	if d.cfg.Store.Driver != "postgres" || d.cfg.Store.Schema != s.Name {
		t.Fatalf("cmkd dev wrote store %+v, want PostgreSQL schema %s", d.cfg.Store, s.Name)
	}
	want := setup(t, d, 2, 2)
	js := d.jetstream()
	resp, err := d.azkeys().RotateKey(t.Context(), "cmk", nil)
	if err != nil {
		t.Fatal(err)
	}
	evs := waitStatus(t, js, "tenant-1", "version.retired", 1, 30*time.Second)
	if n := count(t, evs, "tenant-0", "rewrap.completed"); n != 1 {
		t.Fatalf("%d rewrap.completed for tenant-0, want 1", n)
	}
	if got := dekVersions(t, d, "tenant-0"); len(got) != 1 || got[strings.ToLower(resp.Key.KID.Version())] == 0 {
		t.Fatalf("DEKs by version %v, want all under the new version", got)
	}
	readAll(t, d, want)
	// The tables are in the schema the flag named, not in the default one.
	st, err := postgres.Open(t.Context(), postgres.Config{DSN: s.URL, Schema: s.Name, NoMigrate: true})
	if err != nil {
		t.Fatalf("the schema cmkd dev used: %v", err)
	}
	st.Close()
}
