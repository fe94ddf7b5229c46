package storetest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var leakCases = []testCase{
	{"PlaintextDEKNeverLeaks", testNoLeak},
}

// syncBuffer is a log sink safe for the store's concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}

// testNoLeak drives every path that logs or fails, then looks for each
// plaintext DEK in the database files, the debug logs and every error.
func testNoLeak(t *testing.T, f *fixture) {
	var logs syncBuffer
	opts := &slog.HandlerOptions{Level: slog.LevelDebug}
	log := slog.New(slog.NewMultiHandler(slog.NewJSONHandler(&logs, opts), slog.NewTextHandler(&logs, opts)))
	s := f.store(func(c *store.Config) { c.Logger = log; c.DEKMaxEncryptions = 4; c.MaxRecordSize = 4096 })
	errs := provokeEverything(t, f, s)
	if len(logs.Bytes()) == 0 || len(errs) < 8 {
		t.Fatalf("the run logged %d bytes and failed %d times: it did not exercise the store", len(logs.Bytes()), len(errs))
	}

	keys := plaintextDEKs(t, f, "a", "b")
	var errText strings.Builder
	for _, err := range errs {
		errText.WriteString(err.Error() + "\n")
	}
	scanFor(t, keys, "error strings", []byte(errText.String()))
	scanFor(t, keys, "logs", logs.Bytes())
	scanFiles(t, keys, f.path)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	scanFiles(t, keys, f.path) // after the WAL is checkpointed into the file
}

// provokeEverything writes, rotates, rewraps, seals and unseals, and makes
// each kind of failure happen; it returns the errors.
func provokeEverything(t *testing.T, f *fixture, s *store.Store) []error {
	ctx := t.Context()
	var errs []error
	fail := func(err, target error) {
		t.Helper()
		wantErr(t, err, target)
		errs = append(errs, err)
	}
	f.addTenant(s, "a")
	f.addTenant(s, "b")
	putMany(t, s, "a", 10)
	putMany(t, s, "b", 3)

	v2 := f.Rotate()
	stale := activeDEK(t, s, "a")
	for _, d := range listNotAt(t, s, f.Key, v2, 100) {
		if _, err := s.RewrapDEK(ctx, d, f.Key, true); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.RewrapDEK(ctx, stale, f.Key, false)
	fail(err, store.ErrCASConflict)
	fail(s.RollbackWrapping(ctx, stale.ID, stale.Current.KID), store.ErrCASConflict)
	fail(s.CompleteRewrap(ctx, f.Key, f.Version), store.ErrRewrapIncomplete)

	// A wrapping of the wrong key: key check value mismatch, logged.
	other := make([]byte, store.DEKSize)
	rand.Read(other)
	bad, err := f.KEK.Wrap(ctx, f.Key, other)
	if err != nil {
		t.Fatal(err)
	}
	cur := activeDEK(t, s, "b")
	if err := s.CompareAndSwapWrapping(ctx, cur.ID, cur.Current.KID, bad); err != nil {
		t.Fatal(err)
	}
	s.Forget("b")
	_, err = s.Get(ctx, "b", "k00")
	fail(err, store.ErrIntegrity)
	if err := s.RollbackWrapping(ctx, cur.ID, bad.KID); err != nil {
		t.Fatal(err)
	}

	blob, err := s.Backend().GetRecord(ctx, "a", "k00")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Backend().PutRecord(ctx, "b", "moved", activeDEK(t, s, "b").ID, blob); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "b", "moved")
	fail(err, store.ErrIntegrity)
	fail(s.Put(ctx, "a", "big", make([]byte, 4097)), store.ErrTooLarge)
	_, err = s.Get(ctx, "a", "missing")
	fail(err, store.ErrNotFound)
	fail(s.RemoveTenant(ctx, "a", false), store.ErrNotEmpty)

	if err := s.Seal(ctx, "a", "key disabled", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	_, err = s.Get(ctx, "a", "k01")
	fail(err, store.ErrSealed)
	fail(s.Put(ctx, "a", "k01", []byte("x")), store.ErrSealed)
	f.SetEnabled(v2, false)
	err = s.Unseal(ctx, "a", cmkd.StatusEvent{})
	if err == nil {
		t.Fatal("unsealed with the key version disabled")
	}
	errs = append(errs, err)
	f.SetEnabled(v2, true)
	if err := s.Unseal(ctx, "a", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	get(t, s, "a", "k09")
	return errs
}

// plaintextDEKs unwraps every DEK of the tenants, the way only a test may.
func plaintextDEKs(t *testing.T, f *fixture, tenants ...string) [][]byte {
	t.Helper()
	var keys [][]byte
	for _, id := range tenants {
		for _, d := range deks(t, f.NewStore(t, f.open(t, f.path), nil), id) {
			k, err := f.KEK.Unwrap(t.Context(), d.Current)
			if err != nil {
				t.Fatal(err)
			}
			keys = append(keys, k)
		}
	}
	if len(keys) < 4 {
		t.Fatalf("only %d deks to look for", len(keys))
	}
	return keys
}

func scanFiles(t *testing.T, keys [][]byte, path string) {
	t.Helper()
	found := 0
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		data, err := os.ReadFile(p) // #nosec G304 -- the test's own database and log files
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		found++
		scanFor(t, keys, p, data)
	}
	if found == 0 {
		t.Logf("no database file at %s to scan", path)
	}
}

// scanFor fails if data holds any key raw, in hex or in any base64
// alphabet at any alignment.
func scanFor(t *testing.T, keys [][]byte, what string, data []byte) {
	t.Helper()
	if leak := findLeak(keys, data); leak != "" {
		t.Fatalf("%s in %s", leak, what)
	}
}

// findLeak says which key it found in data and how, or "".
func findLeak(keys [][]byte, data []byte) string {
	lower := bytes.ToLower(data)
	for i, k := range keys {
		for _, form := range leakForms(k) {
			hay := data
			if form.fold {
				hay = lower
			}
			if bytes.Contains(hay, form.b) {
				return fmt.Sprintf("dek %d found as %s", i, form.name)
			}
		}
	}
	return ""
}

type leakForm struct {
	name string
	b    []byte
	fold bool
}

func leakForms(k []byte) []leakForm {
	forms := []leakForm{
		{"raw bytes", k, false},
		{"hex", []byte(hex.EncodeToString(k)), true},
	}
	for _, enc := range []struct {
		name string
		e    *base64.Encoding
	}{{"base64", base64.StdEncoding}, {"base64url", base64.URLEncoding}} {
		for shift := range 3 {
			// Encoded after shift other bytes, the key's characters start
			// at the next 4-char group and stop before the last, which may
			// hold padding or the bytes after it.
			s := enc.e.EncodeToString(append(make([]byte, shift), k...))
			skip := 0
			if shift > 0 {
				skip = 4
			}
			forms = append(forms, leakForm{enc.name, []byte(s[skip : len(s)-4]), false})
		}
	}
	return forms
}
