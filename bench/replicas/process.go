package replicas

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
	"github.com/cmkd-io/cmkd/worker"
)

// envReplica carries a replica's config (JSON) to the process that runs
// it: the harness's own binary started again, which Serve turns into the
// replica.
const envReplica = "CMKD_BENCH_REPLICA"

// readyLine is what a replica prints on stdout once its worker is made.
const readyLine = "ready"

// replicaConfig is what one replica runs with: the worker as `cmkd run`
// wires it, over the shared PostgreSQL schema and the vaults.
type replicaConfig struct {
	DSN      string `json:"dsn"`
	Schema   string `json:"schema"`
	Instance string `json:"instance"`
	// CAs are the vault emulators' CA certificates (PEM).
	CAs           []string      `json:"cas"`
	VaultLimit    float64       `json:"vault_limit"`
	ProbeInterval time.Duration `json:"probe_interval"`
	LeaseTTL      time.Duration `json:"lease_ttl"`
}

// Serve runs this process as a replica when the scenario started it as
// one, and then exits; otherwise it returns at once. A program that runs
// the scenario calls it first thing in main (or TestMain).
func Serve() {
	raw, ok := os.LookupEnv(envReplica)
	if !ok {
		return
	}
	var cfg replicaConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "replica config:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, orphaned := context.WithCancel(ctx)
	go func() {
		// The harness holds our stdin open while it lives: if it dies
		// without stopping us, we stop rather than work on alone.
		_, _ = io.Copy(io.Discard, os.Stdin)
		orphaned()
	}()
	err := serve(ctx, cfg, os.Stdout, slog.New(slog.NewJSONHandler(os.Stderr, nil)))
	orphaned()
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// serve runs one replica until ctx ends: a kek client of its own (with
// its own per-vault limiter, as every `cmkd run` has), a store on its own
// pool, a Reconciler and a worker without event sources — rotations are
// found by the worker's scheduled checks.
func serve(ctx context.Context, cfg replicaConfig, ready io.Writer, log *slog.Logger) error {
	roots := x509.NewCertPool()
	for _, pem := range cfg.CAs {
		roots.AppendCertsFromPEM([]byte(pem))
	}
	kc, err := kek.New(kek.Config{
		Credential: kek.StaticToken("bench"), RootCAs: roots, DisableChallengeResourceVerification: true,
		Policy:  kek.VaultPolicy{AllowLoopback: true},
		Limiter: kek.LimiterConfig{VaultLimit: cfg.VaultLimit}, Logger: log,
	})
	if err != nil {
		return err
	}
	b, err := postgres.Open(ctx, postgres.Config{DSN: cfg.DSN, Schema: cfg.Schema, NoMigrate: true})
	if err != nil {
		return err
	}
	st, err := store.New(store.Config{Backend: b, KEK: kc, Logger: log})
	if err != nil {
		b.Close()
		return err
	}
	defer st.Close()
	rec, err := handlers.New(handlers.Config{Store: st, KEK: kc, Instance: cfg.Instance, Logger: log})
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{
		Store: st, Reconciler: rec, Limits: kc, Instance: cfg.Instance,
		ProbeInterval: cfg.ProbeInterval, LeaseTTL: cfg.LeaseTTL, ShutdownTimeout: 5 * time.Second, Logger: log,
	})
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintln(ready, readyLine); err != nil {
		return err
	}
	if err := w.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// process is a replica running as a process of its own.
type process struct {
	instance string
	cmd      *exec.Cmd
	lifeline io.WriteCloser // the replica's stdin: closing it, or dying, stops the replica
	logPath  string
	exited   chan struct{} // closed when the process has ended; err is then set
	err      error
	// killed marks a replica the scenario killed on purpose.
	killed bool
}

// startReplica starts the harness's own binary as a replica and waits
// until it says it is ready. Its logs go to a file in dir.
func startReplica(ctx context.Context, dir string, cfg replicaConfig) (*process, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(cfg)
	if err != nil {
		return nil, err
	}
	p := &process{instance: cfg.Instance, logPath: filepath.Join(dir, cfg.Instance+".log"), exited: make(chan struct{})}
	logf, err := os.Create(p.logPath)
	if err != nil {
		return nil, err
	}
	defer logf.Close() // the child holds its own descriptor
	// Not CommandContext: the scenario ends its replicas itself, SIGTERM
	// or SIGKILL, and waits for them.
	p.cmd = exec.Command(exe) // #nosec G204 -- this very binary, started again as a replica
	p.cmd.Env = append(os.Environ(), envReplica+"="+string(raw))
	p.cmd.Stderr = logf
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if p.lifeline, err = p.cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cfg.Instance, err)
	}
	readyc := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() && sc.Text() == readyLine {
			readyc <- nil
		} else {
			readyc <- fmt.Errorf("%s did not say it is ready", cfg.Instance)
		}
		_, _ = io.Copy(io.Discard, out) // stdout has nothing else; drain it so Wait can return
		p.err = p.cmd.Wait()
		close(p.exited)
	}()
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case err = <-readyc:
	case <-t.C:
		err = fmt.Errorf("%s not ready after a minute", cfg.Instance)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if err != nil {
		p.kill()
		return nil, fmt.Errorf("%w: %s", err, p.logTail())
	}
	return p, nil
}

// kill ends the process at once, as a crash or `kill -9` would: it
// releases nothing.
func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.exited
}

// term asks the process to stop the way an orchestrator stops a pod
// (SIGTERM): the worker drains and releases its leases.
func (p *process) term() { _ = p.cmd.Process.Signal(syscall.SIGTERM) }

// wait waits for the process to end after term, and kills it after
// timeout.
func (p *process) wait(timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-p.exited:
	case <-t.C:
		p.kill()
		return fmt.Errorf("%s did not stop within %s", p.instance, timeout)
	}
	if p.err != nil {
		return fmt.Errorf("%s: %w: %s", p.instance, p.err, p.logTail())
	}
	return nil
}

// running reports whether the process has not ended.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// holds reports whether holder, a lease's holder, is this replica: the
// worker names holders "<instance>/<random>".
func (p *process) holds(holder string) bool { return strings.HasPrefix(holder, p.instance+"/") }

// logTail is the end of the replica's log, for an error message.
func (p *process) logTail() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return "no log: " + err.Error()
	}
	const tail = 2000
	if len(b) > tail {
		b = b[len(b)-tail:]
	}
	return fmt.Sprintf("log of %s ends: %s", p.instance, b)
}
