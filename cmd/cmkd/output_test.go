package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/internal/natstest"
)

// cliEnv is what the data commands run against in process: a config file
// in a temp dir pointing at an in-process Key Vault emulator over HTTPS
// (credential "static"), a SQLite file and, optionally, an embedded NATS.
type cliEnv struct {
	t      *testing.T
	dir    string
	config string
	cfg    *Config
	kv     *keyvault.Server
}

const cliToken = "cli-test-token"

func newCLIEnv(t *testing.T, withNATS bool) *cliEnv {
	t.Helper()
	dir := t.TempDir()
	caFile := filepath.Join(dir, "kv-ca.pem")
	kv, err := keyvault.Start(keyvault.Config{ThrottleLimit: -1, CAFile: caFile, Token: cliToken, PurgeProtection: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { kv.Close() })
	cfg := &Config{
		Instance: "cli-test",
		Store:    StoreConfig{Driver: "sqlite", DSN: filepath.Join(dir, "cmkd.db")},
		KeyVault: KVConfig{Credential: "static", Token: cliToken, CAFile: caFile, Emulator: true},
		Dev:      DevConfig{KeyVault: kv.URL()},
	}
	if withNATS {
		cfg.NATS.URL = cliNATS(t).ClientURL()
	}
	e := &cliEnv{t: t, dir: dir, config: filepath.Join(dir, "cmkd.yaml"), cfg: cfg, kv: kv}
	e.writeConfig()
	return e
}

func (e *cliEnv) writeConfig() {
	e.t.Helper()
	if err := writeConfig(e.config, e.cfg); err != nil {
		e.t.Fatal(err)
	}
}

// cliNATS is an embedded nats-server with JetStream on a random port.
func cliNATS(t *testing.T) *server.Server {
	t.Helper()
	return natstest.Start(t, -1, "")
}

// run runs cmkd with args and --config, as a user would.
func (e *cliEnv) run(args ...string) (string, string, int) {
	e.t.Helper()
	return e.runCtx(e.t.Context(), args...)
}

func (e *cliEnv) runCtx(ctx context.Context, args ...string) (string, string, int) {
	e.t.Helper()
	var out, errb bytes.Buffer
	code := run(ctx, append(args, "--config", e.config), &out, &errb)
	return out.String(), errb.String(), code
}

// must runs a command that has to succeed and returns its stdout.
func (e *cliEnv) must(args ...string) string {
	e.t.Helper()
	out, errs, code := e.run(args...)
	if code != exitOK {
		e.t.Fatalf("cmkd %s: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	return out
}

// mustJSON runs a command with --json and decodes its one document into v.
func (e *cliEnv) mustJSON(v any, args ...string) {
	e.t.Helper()
	out := e.must(append(args, "--json")...)
	if err := json.Unmarshal([]byte(out), v); err != nil {
		e.t.Fatalf("cmkd %s --json printed %q: %v", strings.Join(args, " "), out, err)
	}
}

// wantExit runs a command that has to fail with code and returns its stderr.
func (e *cliEnv) wantExit(code int, args ...string) string {
	e.t.Helper()
	out, errs, got := e.run(args...)
	if got != code {
		e.t.Fatalf("cmkd %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, out, errs)
	}
	return errs
}

func (e *cliEnv) keyURL(name string) string { return e.kv.URL() + "/keys/" + name }

// createKey creates an RSA key through the CLI and returns its first version.
func (e *cliEnv) createKey(name string) string {
	e.t.Helper()
	var kv keyView
	e.mustJSON(&kv, "vault", "create-key", name)
	return versionOf(kv.KID)
}

func versionOf(kid string) string { return kid[strings.LastIndex(kid, "/")+1:] }

// deps opens the store and Key Vault client the commands use, so a test
// can do what no command does (seal a tenant, hold a lease).
func (e *cliEnv) deps() *deps {
	e.t.Helper()
	d, err := openDeps(e.t.Context(), e.cfg, slog.New(slog.DiscardHandler), false)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(d.Close)
	return d
}

// withStdin makes put read r as its stdin for the rest of the test.
func withStdin(t *testing.T, r io.Reader) {
	old := stdinReader
	stdinReader = r
	t.Cleanup(func() { stdinReader = old })
}

func TestCLIHelpExitsZero(t *testing.T) {
	for _, args := range [][]string{
		{"tenant", "--help"}, {"tenant", "add", "--help"}, {"tenant", "list", "-h"}, {"tenant", "show", "--help"},
		{"tenant", "remove", "--help"}, {"put", "--help"}, {"get", "--help"}, {"del", "--help"}, {"ls", "--help"},
		{"vault", "--help"}, {"vault", "create-key", "--help"}, {"vault", "rotate", "--help"}, {"vault", "disable", "--help"},
		{"vault", "enable", "--help"}, {"vault", "delete", "--help"}, {"vault", "recover", "--help"},
		{"vault", "purge", "--help"}, {"vault", "show", "--help"}, {"vault", "revoke", "--help"}, {"vault", "grant", "--help"},
		{"rewrap", "--help"}, {"audit", "--help"}, {"audit", "tail", "--help"},
	} {
		var errb bytes.Buffer
		if code := run(t.Context(), args, io.Discard, &errb); code != exitOK {
			t.Errorf("cmkd %s: exit %d, want 0", strings.Join(args, " "), code)
		}
		if !strings.Contains(errb.String(), "usage: cmkd") {
			t.Errorf("cmkd %s printed no usage: %q", strings.Join(args, " "), errb.String())
		}
	}
}

// TestCLIUsageErrorsExit2 checks that every malformed command line is
// refused with exit 2 before anything is opened: the config named does
// not even exist.
func TestCLIUsageErrorsExit2(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.yaml")
	for _, args := range [][]string{
		{"tenant"}, {"tenant", "frob"}, {"tenant", "add", "--key", "https://v/keys/k"},
		{"tenant", "add", "acme", "--key", "https://v/keys/k/0123"}, {"tenant", "set-key", "acme"},
		{"tenant", "set-key", "acme", "--platform-only"}, {"tenant", "set-key", "acme", "--key", "https://v/keys/k", "--platform-only", "--yes"},
		{"tenant", "add", "a", "b", "--key", "https://v/keys/k"}, {"tenant", "list", "extra"}, {"tenant", "show"},
		{"tenant", "remove", "--force"}, {"put", "acme"}, {"get", "acme"}, {"get", "a", "b", "c"}, {"del"},
		{"ls"}, {"ls", "acme", "--no-such-flag"}, {"vault"}, {"vault", "frob"}, {"vault", "rotate"},
		{"vault", "create-key", "--size", "big", "k"}, {"vault", "revoke", "extra"}, {"rewrap"},
		{"rewrap", "--key", "https://v/keys/k", "--tenant", "acme"}, {"rewrap", "extra", "--tenant", "acme"},
		{"audit"}, {"audit", "tail", "extra"}, {"audit", "tail", "--since", "yesterday"}, {"audit", "tail", "--since", "-1h"},
	} {
		var errb bytes.Buffer
		if code := run(t.Context(), append(args, "--config", missing), io.Discard, &errb); code != exitUsage {
			t.Errorf("cmkd %s: exit %d, want %d\n%s", strings.Join(args, " "), code, exitUsage, errb.String())
		}
	}
}

func TestCLIMissingConfigSaysWhatToDo(t *testing.T) {
	var errb bytes.Buffer
	code := run(t.Context(), []string{"tenant", "list", "--config", filepath.Join(t.TempDir(), "none.yaml")}, io.Discard, &errb)
	if code != exitError || !strings.Contains(errb.String(), "cmkd dev") || !strings.Contains(errb.String(), "--config") {
		t.Fatalf("exit %d, stderr %q: want 1 and a hint to start cmkd dev or pass --config", code, errb.String())
	}
}

func TestCLIProgressBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int
		want        string
	}{
		{0, 4, "\r[" + strings.Repeat(".", 40) + "] 0/4 DEKs"},
		{1, 4, "\r[" + strings.Repeat("#", 10) + strings.Repeat(".", 30) + "] 1/4 DEKs"},
		{4, 4, "\r[" + strings.Repeat("#", 40) + "] 4/4 DEKs\n"},
		{0, 0, ""},
	} {
		var b bytes.Buffer
		progressBar(&b, tc.done, tc.total)
		if b.String() != tc.want {
			t.Errorf("progressBar(%d, %d) = %q, want %q", tc.done, tc.total, b.String(), tc.want)
		}
	}
}

func TestCLIProgressJSONLines(t *testing.T) {
	var out bytes.Buffer
	p := progressTo(io.Discard, true, &out)
	p(0, 3)
	p(1, 3) // may be dropped: at most one line per 100 ms
	p(3, 3) // the last one is always shown
	var lines []map[string]int
	for l := range strings.Lines(out.String()) {
		var m map[string]int
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("progress line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	if len(lines) < 2 || lines[0]["done"] != 0 || lines[len(lines)-1]["done"] != 3 || lines[len(lines)-1]["total"] != 3 {
		t.Fatalf("progress lines %v, want done 0 first and 3 of 3 last", lines)
	}
}

// TestCLIProgressNotInFiles: redirected to a file, rewrap draws no bar (no
// carriage returns in a log); only a terminal gets one.
func TestCLIProgressNotInFiles(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTerminal(f) || isTerminal(&bytes.Buffer{}) {
		t.Fatal("a regular file or a buffer taken for a terminal")
	}
	p := progressTo(f, false, f)
	p(0, 2)
	p(2, 2)
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != 0 {
		t.Fatalf("progress wrote %d bytes to a file, want none", fi.Size())
	}
}
