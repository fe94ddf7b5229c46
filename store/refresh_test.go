package store_test

import (
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/sqlite"
	"github.com/cmkd-io/cmkd/store/storetest"
)

// A DEK in steady use is confirmed ahead of its window's end in the
// background, so no call waits for the database: the confirmation, read at
// 80 ms, carries the window to 180 ms, and a seal written after it is seen
// at 181 ms, not before — the same bound a blocking read gives. A seal the
// background confirmation finds drops the DEKs at once.
func TestRefreshAhead(t *testing.T) {
	h := storetest.NewHarness(t)
	b, err := sqlite.Open(t.Context(), sqlite.Config{Path: filepath.Join(t.TempDir(), "cmkd.db")})
	if err != nil {
		t.Fatal(err)
	}
	s := h.NewStore(t, b, nil)
	other := h.NewStore(t, b, nil) // another process on the same database
	for _, id := range []string{"a", "b"} {
		if _, err := s.AddTenant(t.Context(), id, h.Key); err != nil {
			t.Fatal(err)
		}
	}
	ct, err := s.Encrypt(t.Context(), "a", []byte("v"), nil) // confirmed now
	if err != nil {
		t.Fatal(err)
	}
	decrypt := func(time.Duration) error { // the argument moves the clock first
		t.Helper()
		_, err := s.Decrypt(t.Context(), "a", ct, nil)
		store.WaitRefreshes(s)
		return err
	}
	start := h.Clock.Now()
	at := func(d time.Duration) time.Duration { h.Clock.Add(start.Add(d).Sub(h.Clock.Now())); return d }

	if err := decrypt(at(80 * time.Millisecond)); err != nil { // in the last quarter: refreshes
		t.Fatal(err)
	}
	if err := other.Seal(t.Context(), "a", cmkd.ReasonDisabled, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if err := decrypt(at(150 * time.Millisecond)); err != nil {
		t.Fatalf("at 150 ms, inside the window the refresh at 80 ms opened: %v", err)
	}
	if err := decrypt(at(181 * time.Millisecond)); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("at 181 ms, past it: %v, want ErrSealed", err)
	}

	// b: the seal comes first, the refresh finds it and drops the DEK.
	ctB, err := s.Encrypt(t.Context(), "b", []byte("w"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Seal(t.Context(), "b", cmkd.ReasonDisabled, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	h.Clock.Add(80 * time.Millisecond)
	if _, err := s.Decrypt(t.Context(), "b", ctB, nil); err != nil {
		t.Fatalf("inside the window: %v", err) // served; its refresh finds the seal
	}
	store.WaitRefreshes(s)
	if n := len(store.CachedKeys(s, "b")); n != 0 {
		t.Fatalf("%d DEKs of b cached after the refresh found it sealed", n)
	}
	if _, err := s.Decrypt(t.Context(), "b", ctB, nil); !errors.Is(err, store.ErrSealed) {
		t.Fatalf("after the refresh found the seal: %v, want ErrSealed at once", err)
	}
}
