package main

// End-to-end tests: `cmkd dev` runs as a separate process (the built
// binary) and is driven only through the CLI, the real azkeys and
// aznamespaces clients, and nats.go.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/internal/eventually"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// binary builds cmkd once per test run. Without -race: the processes
// under test do real RSA work at Key Vault's rates, and the race detector
// slows that several times over; the packages' own tests run with -race.
func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "cmkd-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "cmkd")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// devProc is one running `cmkd dev`.
type devProc struct {
	t      *testing.T
	bin    string
	dir    string
	args   []string
	cmd    *exec.Cmd
	exited chan struct{} // closed when cmd has been waited for
	stderr *syncBuffer
	cfg    *Config
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func startDev(t *testing.T, dir string, extra ...string) *devProc {
	t.Helper()
	d := &devProc{t: t, bin: binary(t), dir: dir, args: append([]string{"dev", "--data", dir, "--probe-interval", "500ms"}, extra...)}
	d.start()
	t.Cleanup(func() {
		d.stop()
		if t.Failed() {
			t.Logf("cmkd dev's log (the last 60 lines):\n%s", tail(d.stderr.String(), 60))
		}
	})
	return d
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (d *devProc) start() {
	d.t.Helper()
	d.stderr = &syncBuffer{}
	d.cmd = exec.Command(d.bin, d.args...)
	dieWithTest(d.cmd)
	d.cmd.Stdout, d.cmd.Stderr = &syncBuffer{}, d.stderr
	if err := d.cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	exited := make(chan struct{})
	d.exited = exited
	go func() { d.cmd.Wait(); close(exited) }()
	eventually.NoError(d.t, 60*time.Second, "cmkd dev to be ready", func() (bool, error) {
		select {
		case <-exited:
			return false, fmt.Errorf("cmkd dev exited at start:\n%s", d.stderr.String())
		default:
		}
		cfg, err := loadConfig(filepath.Join(d.dir, "cmkd.yaml"))
		if err != nil || !ready(cfg.HTTP.Listen) {
			return false, nil
		}
		d.cfg = cfg
		return true, nil
	})
}

func ready(addr string) bool {
	if addr == "" {
		return false
	}
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

func (d *devProc) stop() {
	select {
	case <-d.exited:
		return
	default:
	}
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
	case <-time.After(30 * time.Second):
		d.cmd.Process.Kill()
		<-d.exited
	}
}

func (d *devProc) kill9() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		d.t.Fatal(err)
	}
	<-d.exited
}

// cli runs a cmkd command against this dev system.
func (d *devProc) cli(stdin string, args ...string) (string, string, int) {
	d.t.Helper()
	cmd := exec.Command(d.bin, args...)
	cmd.Env = append(os.Environ(), "CMKD_CONFIG="+filepath.Join(d.dir, "cmkd.yaml"))
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		d.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// must runs a command that has to succeed and returns its stdout.
func (d *devProc) must(stdin string, args ...string) string {
	d.t.Helper()
	out, errs, code := d.cli(stdin, args...)
	if code != 0 {
		d.t.Fatalf("cmkd %s: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	return out
}

func (d *devProc) keyURL(name string) string { return d.cfg.Dev.KeyVault + "/keys/" + name }

// key is the key name in the dev vault.
func (d *devProc) key(name string) cmkd.KeyID { return cmkd.MustParseKeyID(d.keyURL(name)) }

// azkeys is the real Key Vault client, configured from cmkd.yaml.
func (d *devProc) azkeys() *azkeys.Client { return d.azkeysAt(d.cfg.Dev.KeyVault) }

func (d *devProc) jetstream() jetstream.JetStream {
	d.t.Helper()
	nc, err := nats.Connect(d.cfg.NATS.URL, nats.MaxReconnects(-1))
	if err != nil {
		d.t.Fatal(err)
	}
	d.t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		d.t.Fatal(err)
	}
	return js
}

// statusEvents reads the whole status stream.
func statusEvents(t *testing.T, js jetstream.JetStream) []status.Received {
	t.Helper()
	var evs []status.Received
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	err := status.Tail(ctx, js, status.TailOptions{}, func(e status.Received) error { evs = append(evs, e); return nil })
	if err != nil && !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Fatal(err)
	}
	return evs
}

// count counts events of kind for tenant, and fails on a duplicate id.
func count(t *testing.T, evs []status.Received, tenant, kind string) int {
	t.Helper()
	n := 0
	seen := map[string]bool{}
	for _, e := range evs {
		if seen[e.ID] {
			t.Fatalf("status event %s (%s) is in the stream twice", e.ID, e.Kind)
		}
		seen[e.ID] = true
		if e.Tenant == tenant && string(e.Kind) == kind {
			n++
		}
	}
	return n
}

// waitStatus waits until tenant has at least n events of kind.
func waitStatus(t *testing.T, js jetstream.JetStream, tenant, kind string, n int, within time.Duration) []status.Received {
	t.Helper()
	var evs []status.Received
	eventually.True(t, within, fmt.Sprintf("%d× %s for %s", n, kind, tenant), func() bool {
		evs = statusEvents(t, js)
		return count(t, evs, tenant, kind) >= n
	})
	return evs
}
