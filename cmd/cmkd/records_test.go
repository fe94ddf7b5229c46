package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
)

// TestCLIRecords: values go in through --value or stdin and come back out
// byte for byte; ls lists keys in order; del removes.
func TestCLIRecords(t *testing.T) {
	e := newCLIEnv(t, false)
	e.createKey("cmk")
	e.must("tenant", "add", "acme", "--key", e.keyURL("cmk"))

	binary := []byte("line one\nline two\x00\xff\n")
	withStdin(t, bytes.NewReader(binary))
	if out := e.must("put", "acme", "b"); out != "" {
		t.Fatalf("put printed %q; want nothing without --json", out)
	}
	e.must("put", "acme", "a", "--value", "hello")
	var put map[string]any
	e.mustJSON(&put, "put", "acme", "c", "--value", "")
	if put["tenant"] != "acme" || put["key"] != "c" || put["bytes"] != float64(0) {
		t.Fatalf("put --json printed %v", put)
	}

	if got := e.must("get", "acme", "b"); got != string(binary) {
		t.Fatalf("get printed %q, want the stdin bytes %q", got, binary)
	}
	if got := e.must("get", "acme", "a"); got != "hello" {
		t.Fatalf("get printed %q, want hello", got)
	}
	var got struct{ Value []byte }
	e.mustJSON(&got, "get", "acme", "b")
	if !bytes.Equal(got.Value, binary) {
		t.Fatalf("get --json value %q, want %q", got.Value, binary)
	}

	if out := e.must("ls", "acme"); out != "a\nb\nc\n" {
		t.Fatalf("ls printed %q, want a b c one per line", out)
	}
	e.must("del", "acme", "b")
	var keys []string
	e.mustJSON(&keys, "ls", "acme")
	if strings.Join(keys, ",") != "a,c" {
		t.Fatalf("ls --json after del: %v, want [a c]", keys)
	}
	e.wantExit(exitNotFound, "get", "acme", "b")
	e.wantExit(exitNotFound, "del", "acme", "b")
}

func TestCLIRecordsOfMissingTenantExit4(t *testing.T) {
	e := newCLIEnv(t, false)
	for _, args := range [][]string{
		{"put", "nobody", "k", "--value", "v"}, {"get", "nobody", "k"}, {"del", "nobody", "k"}, {"ls", "nobody"},
	} {
		e.wantExit(exitNotFound, args...)
	}
}

// TestCLIRecordsOfSealedTenantExit3: every record command on a sealed tenant
// exits 3 and names the reason and since when, and nothing is lost: after
// unsealing, the value is there.
func TestCLIRecordsOfSealedTenantExit3(t *testing.T) {
	e := newCLIEnv(t, false)
	e.createKey("cmk")
	e.must("tenant", "add", "acme", "--key", e.keyURL("cmk"))
	e.must("put", "acme", "k", "--value", "kept")
	d := e.deps()
	if err := d.store.Seal(t.Context(), "acme", "access revoked", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	tn, err := d.store.Tenant(t.Context(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	since := tn.SealedAt.Format(time.RFC3339)
	for _, args := range [][]string{
		{"put", "acme", "k", "--value", "v"}, {"get", "acme", "k"}, {"del", "acme", "k"}, {"ls", "acme"},
	} {
		errs := e.wantExit(exitSealed, args...)
		if !strings.Contains(errs, "access revoked") || !strings.Contains(errs, since) {
			t.Errorf("cmkd %s on a sealed tenant says %q; want the reason and %s", strings.Join(args, " "), errs, since)
		}
	}
	if err := d.store.Unseal(t.Context(), "acme", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if got := e.must("get", "acme", "k"); got != "kept" {
		t.Fatalf("after unseal get printed %q, want kept", got)
	}
}

func TestCLIPutRefusesOversizedStdin(t *testing.T) {
	e := newCLIEnv(t, false)
	e.createKey("cmk")
	e.must("tenant", "add", "acme", "--key", e.keyURL("cmk"))
	withStdin(t, bytes.NewReader(make([]byte, maxStdinValue+1)))
	if errs := e.wantExit(exitError, "put", "acme", "big"); !strings.Contains(errs, "exceeds") {
		t.Fatalf("oversized put says %q", errs)
	}
	e.wantExit(exitNotFound, "get", "acme", "big")
}
