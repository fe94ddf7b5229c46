package main

import (
	"bytes"
	"slices"
	"strconv"
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

// TestCLILsEscapesKeys: record keys are data another user chose; ls must not
// hand their escape sequences or direction overrides to the terminal.
func TestCLILsEscapesKeys(t *testing.T) {
	e := newCLIEnv(t, false)
	e.createKey("cmk")
	e.must("tenant", "add", "acme", "--key", e.keyURL("cmk"))
	keys := []string{"\x1b]0;owned\x07\x1b[2J", "plain", "rtl\u202eexe.txt", "two\nlines", `"\x1b"`}
	for _, k := range keys {
		e.must("put", "acme", k, "--value", "v")
	}
	out := e.must("ls", "acme")
	if strings.ContainsAny(out, "\x1b\x07\u202e") {
		t.Fatalf("ls printed raw control characters: %q", out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(keys) {
		t.Fatalf("ls printed %d lines for %d keys: %q", len(lines), len(keys), out)
	}
	// A key that looks quoted is quoted too: a quoted line always means escaped.
	for _, want := range []string{strconv.Quote(keys[0]), "plain", strconv.Quote(keys[2]), strconv.Quote(keys[3]), strconv.Quote(keys[4])} {
		if !slices.Contains(lines, want) {
			t.Errorf("ls lines %q lack %s", lines, want)
		}
	}
}

// TestCLIPutRefusesInvalidUTF8Key: a key that is not UTF-8 could be stored
// but never listed faithfully (JSON turns it into U+FFFD), so it is refused
// with a reason.
func TestCLIPutRefusesInvalidUTF8Key(t *testing.T) {
	e := newCLIEnv(t, false)
	e.createKey("cmk")
	e.must("tenant", "add", "acme", "--key", e.keyURL("cmk"))
	_, errs, code := e.run("put", "acme", "bad\xffkey", "--value", "v")
	if (code != exitError && code != exitUsage) || !strings.Contains(errs, "UTF-8") {
		t.Fatalf("put of a non-UTF-8 key: exit %d, %q; want exit 1 or 2 saying the key is not UTF-8", code, errs)
	}
	if out := e.must("ls", "acme", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("ls after the refused put: %s", out)
	}
}

// TestCLILsJSONRoundTripsKeys: every key put accepts comes back from
// ls --json byte for byte and addresses its record again.
func TestCLILsJSONRoundTripsKeys(t *testing.T) {
	e := newCLIEnv(t, false)
	e.createKey("cmk")
	e.must("tenant", "add", "acme", "--key", e.keyURL("cmk"))
	candidates := []string{
		"plain", "with space", "tab\there", "nl\nhere", "esc\x1b[31m", "nul\x00byte", "del\x7f", "bell\x07",
		"quote\"and\\back", "<html>&amp;", "rtl\u202eoverride", "zero\u200bwidth", "bom\ufeff", "emoji🔑",
		"ünïcödé", "\u2028line-sep", "bad\xff", "half\xc3", "overlong\xc0\xaf", "surrogate\xed\xa0\x80",
	}
	var accepted []string
	for i, k := range candidates {
		if _, _, code := e.run("put", "acme", k, "--value", strconv.Itoa(i)); code == exitOK {
			accepted = append(accepted, k)
		}
	}
	var listed []string
	e.mustJSON(&listed, "ls", "acme")
	slices.Sort(accepted)
	slices.Sort(listed)
	if !slices.Equal(listed, accepted) {
		t.Fatalf("ls --json listed %q\nput accepted      %q", listed, accepted)
	}
	for _, k := range listed {
		want := strconv.Itoa(slices.Index(candidates, k))
		if got := e.must("get", "acme", k); got != want {
			t.Errorf("get %q = %q, want %q", k, got, want)
		}
	}
}
