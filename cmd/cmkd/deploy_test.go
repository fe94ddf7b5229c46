package main

// Tests of what deploy/ gives an operator, run against cmkd itself: the
// streams of deploy/nats in check-only mode, and (deploy_chart_test.go) the
// Helm chart's ConfigMap and probes.

import (
	"context"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	natsdef "github.com/cmkd-io/cmkd/deploy/nats"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
)

// emulatorConfig is a config for `cmkd run` against the emulators of ep,
// with a SQLite store in dir and the health server on a free port.
func emulatorConfig(t *testing.T, ep emulatorEndpoints, dir string) *Config {
	t.Helper()
	addr, err := freeAddr()
	if err != nil {
		t.Fatal(err)
	}
	return &Config{
		Instance: "deploy-test",
		Store:    StoreConfig{Driver: "sqlite", DSN: filepath.Join(dir, "cmkd.db")},
		KeyVault: KVConfig{
			Credential: "static", Token: "dev", CAFile: ep.KeyVaultCA, Emulator: true, Vaults: []string{ep.KeyVault},
		},
		HTTP: HTTPConfig{Listen: addr},
	}
}

// applyStreamFiles creates the streams and consumer of deploy/nats as an
// operator would with the nats CLI (one replica: the test server is not a
// cluster).
func applyStreamFiles(t *testing.T, ctx context.Context, js jetstream.JetStream) {
	t.Helper()
	for _, f := range []string{natsdef.StatusFile, natsdef.EventsFile, natsdef.DLQFile} {
		c, err := natsdef.Stream(f)
		if err != nil {
			t.Fatal(err)
		}
		c.Replicas = 1
		if _, err := js.CreateStream(ctx, c); err != nil {
			t.Fatalf("create stream from %s: %v", f, err)
		}
	}
	cc, err := natsdef.Consumer(natsdef.ConsumerFile)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, natsdef.EventsStream, cc); err != nil {
		t.Fatal(err)
	}
}

// runInProcess runs `cmkd run --config path` until ctx ends; the exit code
// and stderr arrive on the returned channel.
func runInProcess(ctx context.Context, path string, env map[string]string, t *testing.T) <-chan runResult {
	for k, v := range env {
		t.Setenv(k, v)
	}
	out := make(chan runResult, 1)
	go func() {
		var stderr syncBuffer
		code := run(ctx, []string{"run", "--config", path}, &syncBuffer{}, &stderr)
		out <- runResult{code, stderr.String()}
	}()
	return out
}

type runResult struct {
	code   int
	stderr string
}

func httpStatus(url string) int {
	resp, err := http.Get(url) // #nosec G107 -- a loopback test server
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestDeployCheckOnlyStreams: with streams an operator made from
// deploy/nats, `cmkd run` in check-only mode (nats.check_streams) starts,
// consumes the work queue and leaves the streams as they were; against a
// server without them it refuses to start, naming the stream.
func TestDeployCheckOnlyStreams(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ep, _ := startEmulatorCommand(t, ctx)

	ns := natstest.Start(t, -1, "")
	js := natstest.JetStream(t, ns.ClientURL())
	applyStreamFiles(t, ctx, js)
	before, err := js.Stream(ctx, "CMKD_STATUS")
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cfg := emulatorConfig(t, ep, dir)
	cfg.NATS = NATSConfig{URL: ns.ClientURL(), CheckStreams: true}
	cfg.Sources.Queue.Enabled = true
	runCheckOnly(t, ctx, cfg, dir, js)
	after, err := js.Stream(ctx, "CMKD_STATUS")
	if err != nil {
		t.Fatal(err)
	}
	if b, a := before.CachedInfo().Config, after.CachedInfo().Config; !reflect.DeepEqual(b, a) {
		t.Errorf("check-only cmkd changed CMKD_STATUS:\nbefore %+v\nafter  %+v", b, a)
	}

	// Against a NATS without the streams, check-only mode refuses to start.
	empty := natstest.Start(t, -1, "")
	cfg.NATS.URL = empty.ClientURL()
	path := filepath.Join(dir, "cmkd.yaml")
	if err := writeConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	r := <-runInProcess(ctx, path, nil, t)
	if r.code != exitError || !strings.Contains(r.stderr, "nats.check_streams") || !strings.Contains(r.stderr, "CMKD_STATUS") {
		t.Fatalf("cmkd run against a NATS without streams exited %d, want %d naming nats.check_streams and CMKD_STATUS:\n%s", r.code, exitError, r.stderr)
	}
	if names := streamNames(t, ctx, natstest.JetStream(t, empty.ClientURL())); len(names) != 0 {
		t.Errorf("check-only cmkd created streams %v", names)
	}
}

func streamNames(t *testing.T, ctx context.Context, js jetstream.JetStream) []string {
	t.Helper()
	var names []string
	l := js.StreamNames(ctx)
	for n := range l.Name() {
		names = append(names, n)
	}
	if err := l.Err(); err != nil {
		t.Fatal(err)
	}
	return names
}

// TestDeployConfigRefusesCreateAndCheck: owning the streams and checking
// someone else's are exclusive.
func TestDeployConfigRefusesCreateAndCheck(t *testing.T) {
	c := Config{Store: StoreConfig{DSN: "x"}, NATS: NATSConfig{CreateStreams: true, CheckStreams: true}}
	c.SetDefaults()
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "nats.check_streams") {
		t.Fatalf("Validate: %v; want an error naming nats.check_streams", err)
	}
}

// runCheckOnly runs `cmkd run` with cfg (written to dir) until it is ready
// and pulls from the operator's consumer, as js sees it; then stops it and
// fails the test unless it exited cleanly.
func runCheckOnly(t *testing.T, ctx context.Context, cfg *Config, dir string, js jetstream.JetStream) {
	t.Helper()
	path := filepath.Join(dir, "cmkd.yaml")
	if err := writeConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := runInProcess(rctx, path, nil, t)
	eventually.NoError(t, 30*time.Second, "cmkd run to be ready", func() (bool, error) {
		select {
		case r := <-done:
			t.Fatalf("cmkd run exited %d:\n%s", r.code, r.stderr)
		default:
		}
		return httpStatus("http://"+cfg.HTTP.Listen+"/readyz") == http.StatusOK, nil
	})
	eventually.NoError(t, 10*time.Second, "cmkd to pull from the operator's consumer", func() (bool, error) {
		c, err := js.Consumer(ctx, natsdef.EventsStream, "cmkd-worker")
		if err != nil {
			return false, err
		}
		ci, err := c.Info(ctx)
		return err == nil && ci.NumWaiting > 0, nil
	})
	stop()
	if r := <-done; r.code != exitOK {
		t.Fatalf("cmkd run exited %d:\n%s", r.code, r.stderr)
	}
}
