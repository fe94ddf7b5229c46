package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"gopkg.in/yaml.v3"

	"github.com/cmkd-io/cmkd/emulator/eventgrid"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/internal/failpoint"
	"github.com/cmkd-io/cmkd/internal/natstest"
	"github.com/cmkd-io/cmkd/kek"
)

// The names the emulators and the replicas share.
const (
	kvToken      = "chaos"
	egKey        = "chaos-key"
	topic        = "keyvault"
	subscription = "cmkd"
)

// cluster is what a run starts: the emulators, NATS, the store's server
// (PostgreSQL) or file (SQLite), and the replicas.
type cluster struct {
	cfg  Config
	t    timings
	dir  string
	hist *history
	log  *slog.Logger

	vaults []*keyvault.Server
	kvCA   string
	eg     *eventgrid.Server
	egCA   string
	kvEv   *eventLog // what Key Vault sent, for replaying it

	natsMu   sync.Mutex
	ns       *server.Server
	natsPort int
	natsDir  string
	nc       *nats.Conn
	js       jetstream.JetStream

	disk       *SmallDisk // the store's disk, nil where none can be mounted
	dbMu       sync.Mutex
	db         *sql.DB // see readDB
	pg         *Postgres
	sqlitePath string
	storeDir   string

	replicas  []*replica
	exits     atomic.Int64 // exits the harness did not cause
	slowStops atomic.Int64 // SIGTERMs a replica did not end within 20 s
}

func startCluster(ctx context.Context, cfg Config, t timings, hist *history) (*cluster, error) {
	c := &cluster{cfg: cfg, t: t, dir: cfg.Dir, hist: hist, log: slog.New(slog.DiscardHandler), kvEv: &eventLog{}}
	if err := c.startEmulators(); err != nil {
		return c, err
	}
	c.natsDir = filepath.Join(c.dir, "nats")
	if err := c.startNATS(); err != nil {
		return c, err
	}
	if err := c.connectNATS(); err != nil {
		return c, err
	}
	if err := c.startStore(ctx); err != nil {
		return c, err
	}
	for i := range cfg.Replicas {
		r, err := c.newReplica(i)
		if err != nil {
			return c, err
		}
		c.replicas = append(c.replicas, r)
	}
	if cfg.Backend == "postgres" {
		// Migrated once, as an operator would; the replicas may not.
		out, err := exec.CommandContext(ctx, cfg.Bin, "migrate", "--config", c.replicas[0].config).CombinedOutput() // #nosec G204 -- the harness runs the cmkd binary it was given
		if err != nil {
			return c, fmt.Errorf("cmkd migrate: %w: %s", err, out)
		}
	}
	return c, nil
}

func (c *cluster) startEmulators() error {
	c.egCA, c.kvCA = filepath.Join(c.dir, "eventgrid-ca.pem"), filepath.Join(c.dir, "keyvault-ca.pem")
	eg, err := eventgrid.Start(eventgrid.Config{
		CAFile: c.egCA, Key: egKey, Topics: map[string][]string{topic: {subscription}},
		LockDuration: c.t.redelivery,
	})
	if err != nil {
		return fmt.Errorf("start event grid emulator: %w", err)
	}
	c.eg = eg
	for i := range 2 { // two vaults: a fault of one must not touch the other's keys
		kv, err := keyvault.Start(keyvault.Config{
			CAFile: c.kvCA, Token: kvToken, VaultName: fmt.Sprintf("chaos%d", i), ThrottleLimit: -1,
			Sink: c.forward,
		})
		if err != nil {
			return fmt.Errorf("start key vault emulator: %w", err)
		}
		c.vaults = append(c.vaults, kv)
	}
	return nil
}

// forward hands Key Vault's events to Event Grid, as the system topic
// does, and keeps them for the event faults to replay.
func (c *cluster) forward(ev keyvault.CloudEvent) {
	e := eventgrid.CloudEvent{SpecVersion: ev.SpecVersion, ID: ev.ID, Source: ev.Source, Subject: ev.Subject,
		Type: ev.Type, Time: ev.Time, DataContentType: ev.DataContentType, Data: ev.Data}
	c.kvEv.add(e)
	if err := c.eg.Publish(topic, e); err != nil {
		c.hist.note("event grid refused a key vault event: %v", err)
	}
}

// eventLog keeps the events Key Vault sent.
type eventLog struct {
	mu  sync.Mutex
	evs []eventgrid.CloudEvent
}

func (l *eventLog) add(e eventgrid.CloudEvent) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

func (l *eventLog) all() []eventgrid.CloudEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]eventgrid.CloudEvent(nil), l.evs...)
}

func (c *cluster) startNATS() error {
	c.natsMu.Lock()
	defer c.natsMu.Unlock()
	port := c.natsPort
	if port == 0 {
		port = -1
	}
	ns, err := natstest.Run(port, c.natsDir)
	if err != nil {
		return err
	}
	c.ns = ns
	c.natsPort = ns.Addr().(*net.TCPAddr).Port
	return nil
}

func (c *cluster) stopNATS() {
	c.natsMu.Lock()
	defer c.natsMu.Unlock()
	if c.ns != nil {
		c.ns.Shutdown()
		c.ns.WaitForShutdown()
		c.ns = nil
	}
}

func (c *cluster) natsURL() string { return "nats://127.0.0.1:" + strconv.Itoa(c.natsPort) }

func (c *cluster) connectNATS() error {
	nc, err := nats.Connect(c.natsURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	c.nc, c.js = nc, js
	return nil
}

func (c *cluster) startStore(ctx context.Context) error {
	c.storeDir = filepath.Join(c.dir, "store")
	d, err := MountSmallDisk(c.storeDir, c.t.diskSize)
	switch {
	case err == nil:
		c.disk = d
	case errors.Is(err, ErrNoSmallDisk):
		c.hist.note("no small disk here (%v): the full disk is played by a file size limit on the replicas", err)
		if err := os.MkdirAll(c.storeDir, 0o700); err != nil {
			return err
		}
	default:
		return err
	}
	if c.cfg.Backend == "postgres" {
		pg, err := StartPostgres(ctx, filepath.Join(c.storeDir, "pg"))
		if err != nil {
			return fmt.Errorf("start PostgreSQL: %w", err)
		}
		c.pg = pg
		return nil
	}
	c.sqlitePath = filepath.Join(c.storeDir, "cmkd.db")
	return nil
}

func (c *cluster) vaultURLs() []string {
	var out []string
	for _, v := range c.vaults {
		out = append(out, v.URL())
	}
	return out
}

func (c *cluster) azkeys(vault int) (*azkeys.Client, error) {
	return c.vaults[vault].Client(kek.StaticToken(kvToken), policy.RetryOptions{RetryDelay: 200 * time.Millisecond})
}

// close stops everything the cluster started.
func (c *cluster) close() {
	for _, r := range c.replicas {
		r.stop()
	}
	if c.nc != nil {
		c.nc.Close()
	}
	c.stopNATS()
	if c.db != nil {
		c.db.Close() // before the disk it reads goes
	}
	for _, v := range c.vaults {
		v.Close()
	}
	if c.eg != nil {
		c.eg.Close()
	}
	if c.pg != nil {
		c.pg.Close()
	}
	if c.disk != nil {
		c.keepStore()
		c.disk.Close()
	}
}

// keepStore copies the SQLite files off the small disk before it goes,
// for a look after the run. (A PostgreSQL data directory is left alone:
// its size is the point of the small disk.)
func (c *cluster) keepStore() {
	if c.sqlitePath == "" {
		return
	}
	kept := filepath.Join(c.dir, "store-kept")
	if err := os.MkdirAll(kept, 0o700); err != nil {
		return
	}
	for _, suffix := range []string{"", "-wal", "-shm"} {
		b, err := os.ReadFile(c.sqlitePath + suffix)
		if err == nil {
			_ = os.WriteFile(filepath.Join(kept, filepath.Base(c.sqlitePath)+suffix), b, 0o600)
		}
	}
}

// replica is one `cmkd run` process, started again after each death.
type replica struct {
	c      *cluster
	i      int
	name   string
	config string
	http   string
	logf   *os.File

	mu       sync.Mutex
	cmd      *exec.Cmd
	exited   chan struct{}
	armed    string // the kill point armed in the running process
	killing  bool   // the harness is killing it
	starts   int
	hitPoint chan string // kill points hit, as they are
}

func (c *cluster) newReplica(i int) (*replica, error) {
	dir := filepath.Join(c.dir, "replica-"+strconv.Itoa(i))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &replica{c: c, i: i, name: "replica-" + strconv.Itoa(i), config: filepath.Join(dir, "cmkd.yaml"), http: addr,
		hitPoint: make(chan string, 64)}
	if err := os.WriteFile(r.config, c.replicaConfig(r), 0o600); err != nil {
		return nil, err
	}
	if r.logf, err = os.OpenFile(filepath.Join(dir, "cmkd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600); err != nil {
		return nil, err
	}
	return r, nil
}

func (c *cluster) replicaConfig(r *replica) []byte {
	st := map[string]any{"driver": "sqlite", "dsn": c.sqlitePath}
	if c.pg != nil {
		st = map[string]any{"driver": "postgres", "dsn": c.pg.URL, "schema": "cmkd", "migrate": false,
			"max_conns": 4, "statement_timeout": "10s"}
	}
	cfg := map[string]any{
		"instance": r.name,
		"store":    st,
		"nats":     map[string]any{"url": c.natsURL(), "create_streams": true},
		"keyvault": map[string]any{"credential": "static", "token": kvToken, "ca_file": c.kvCA, "emulator": true,
			"vaults": c.vaultURLs(), "initial_rate": 1000},
		"sources": map[string]any{
			"eventgrid": map[string]any{"endpoint": c.eg.URL(), "topic": topic, "subscription": subscription,
				"key": egKey, "ca_file": c.egCA},
			"queue": map[string]any{"enabled": true, "ack_wait": c.t.redelivery.String()},
		},
		"worker": map[string]any{"probe_interval": c.t.probe.String(), "lease_ttl": c.t.lease.String(),
			"unreachable_grace": c.t.grace.String()},
		"http": map[string]any{"listen": r.http},
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		panic(err) // maps of strings and numbers always marshal
	}
	return b
}

// start starts the replica, armed to kill itself at arm ("" for none),
// and waits until it is ready.
func (r *replica) start(ctx context.Context, arm string) error {
	r.mu.Lock()
	cmd := exec.Command(r.c.cfg.Bin, "run", "--config", r.config, "--log", "json") // #nosec G204 -- the harness runs the cmkd binary it was given
	cmd.Stdout, cmd.Stderr = r.logf, r.logf
	cmd.Env = os.Environ()
	if arm != "" {
		cmd.Env = append(cmd.Env, failpoint.EnvVar+"="+arm)
	}
	if err := cmd.Start(); err != nil {
		r.mu.Unlock()
		return fmt.Errorf("start %s: %w", r.name, err)
	}
	exited := make(chan struct{})
	r.cmd, r.exited, r.armed, r.killing = cmd, exited, arm, false
	r.starts++
	r.mu.Unlock()
	go r.wait(cmd, exited, arm)
	return r.waitReady(ctx, exited)
}

// wait reaps the process and sorts its death: a kill point hit, killed
// by the harness, or an exit nobody asked for (an invariant broken).
func (r *replica) wait(cmd *exec.Cmd, exited chan struct{}, arm string) {
	err := cmd.Wait()
	r.mu.Lock()
	killing := r.killing
	r.mu.Unlock()
	var ee *exec.ExitError
	sigkill := errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signaled() && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL
	switch {
	case killing:
	case sigkill && arm != "":
		r.c.hist.add(fmt.Sprintf("%s killed itself at kill point %s", r.name, arm))
		r.hitPoint <- arm
	default:
		r.c.exits.Add(1)
		r.c.hist.note("%s EXITED on its own: %v (see %s)", r.name, err, r.logf.Name())
	}
	close(exited)
}

func (r *replica) waitReady(ctx context.Context, exited chan struct{}) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return nil // died at once (an armed point, or an exit wait() counts)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := http.Get("http://" + r.http + "/readyz") // #nosec G107 -- loopback address the harness chose
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
	}
	return fmt.Errorf("%s not ready within 60 s (log: %s)", r.name, r.logf.Name())
}

// alive reports whether the process runs.
func (r *replica) alive() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.exited == nil {
		return false
	}
	select {
	case <-r.exited:
		return false
	default:
		return true
	}
}

func (r *replica) pid() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil || r.cmd.Process == nil {
		return 0
	}
	return r.cmd.Process.Pid
}

// ending marks the running process as ended by the harness and returns
// it, nil if none ran.
func (r *replica) ending() (*exec.Cmd, chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.killing = true
	return r.cmd, r.exited
}

// kill9 kills the replica with SIGKILL and waits for it to be gone.
func (r *replica) kill9() {
	cmd, exited := r.ending()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-exited
}

// stop ends the replica as an operator would (SIGTERM), or kills it
// after 20 s.
func (r *replica) stop() {
	cmd, exited := r.ending()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		r.c.slowStops.Add(1)
		r.c.hist.note("%s did not stop within 20 s of SIGTERM: killed (see %s)", r.name, r.logf.Name())
		_ = cmd.Process.Signal(syscall.SIGQUIT) // its goroutines, into its log
		select {
		case <-exited:
		case <-time.After(2 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
}
