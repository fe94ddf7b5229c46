package storetest

import (
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var rewrapCases = []testCase{
	{"RewrapCASLosesToEarlierSwap", testRewrapCASStale},
	{"RewrapCASUnderConcurrentWriter", testRewrapCASConcurrent},
	{"RecordReadsAfterRewrapToNewVersion", testRecordAfterRewrap},
	{"RollbackToPreviousWrapping", testRollback},
	{"KeyCheckValueVerifiedOnUnwrap", testKCVVerified},
	{"CompleteRewrapOnlyWhenAllMoved", testCompleteRewrap},
	{"QuarantinedDEKIsLeftOut", testQuarantine},
}

// A DEK set aside as unreadable stays in the store but no longer counts:
// rewraps, probes and version counts skip it, a rewrap completes without
// it, and its dek.unreadable event is written once.
func testQuarantine(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	f.addTenant(s, "b")
	bad := activeDEK(t, s, "b")
	ev := cmkd.StatusEvent{ID: "dek.unreadable:b:" + bad.ID}
	for range 2 {
		if err := s.QuarantineDEK(t.Context(), bad, "key vault cannot unwrap it", ev); err != nil {
			t.Fatal(err)
		}
	}
	if counts, _ := s.VersionCounts(t.Context(), f.Key); counts[f.Version] != 1 {
		t.Fatalf("version counts %v, want only a's DEK", counts)
	}
	v2 := f.Rotate()
	todo := listNotAt(t, s, f.Key, v2, 10)
	if len(todo) != 1 || todo[0].Tenant != "a" {
		t.Fatalf("rewrap work list %+v, want a's DEK alone", todo)
	}
	if _, err := s.RewrapDEK(t.Context(), todo[0], f.KID(v2), false); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteRewrap(t.Context(), f.Key, v2); err != nil {
		t.Fatalf("complete with only the unreadable DEK left behind: %v", err)
	}
	es := claimAll(t, s)
	var unreadable []cmkd.StatusEvent
	for _, e := range es {
		if e.Event.Kind == cmkd.KindDEKUnreadable {
			unreadable = append(unreadable, e.Event)
		}
	}
	if len(unreadable) != 1 || unreadable[0].Tenant != "b" || unreadable[0].Reason == "" {
		t.Fatalf("dek.unreadable events %+v, want one for b with its reason", unreadable)
	}
	if _, err := s.Backend().GetDEK(t.Context(), "b", bad.ID); err != nil {
		t.Fatalf("the unreadable DEK is gone: %v (it must be kept)", err)
	}
}

func testRewrapCASStale(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	d := activeDEK(t, s, "a")
	v2 := f.Rotate()
	w, err := s.RewrapDEK(t.Context(), d, f.Key, false)
	if err != nil {
		t.Fatal(err)
	}
	if w.KID != f.KID(v2) {
		t.Fatalf("rewrapped to %s, want %s", w.KID, f.KID(v2))
	}
	// d is what the losing writer read before the swap.
	_, err = s.RewrapDEK(t.Context(), d, f.Key, false)
	wantErr(t, err, store.ErrCASConflict)
	err = s.CompareAndSwapWrapping(t.Context(), d.ID, d.Current.KID, d.Current)
	wantErr(t, err, store.ErrCASConflict)
	now := activeDEK(t, s, "a")
	if now.Current.KID != w.KID || string(now.Current.Value) != string(w.Value) || now.Previous.KID != d.Current.KID {
		t.Fatal("the losing swap changed the wrapping")
	}
	err = s.CompareAndSwapWrapping(t.Context(), "no-such-dek", w.KID, w)
	wantErr(t, err, store.ErrNotFound)
}

// Two processes rewrap the same DEKs at once: each DEK is swapped exactly
// once, the other writer is told it lost, and nothing else fails.
func testRewrapCASConcurrent(t *testing.T, f *fixture) {
	s1, s2 := f.store(nil), f.store(nil)
	want := map[string]map[string][]byte{}
	for i := range 6 {
		id := fmt.Sprintf("t%d", i)
		f.addTenant(s1, id)
		want[id] = putMany(t, s1, id, 2)
	}
	v2 := f.Rotate()
	todo := listNotAt(t, s1, f.Key, v2, 100)
	var mu sync.Mutex
	wins := map[string]int{}
	var wg sync.WaitGroup
	errs := make(chan error, 2*len(todo))
	for _, s := range []*store.Store{s1, s2} {
		wg.Go(func() {
			for _, d := range todo {
				_, err := s.RewrapDEK(t.Context(), d, f.Key, false)
				switch {
				case err == nil:
					mu.Lock()
					wins[d.ID]++
					mu.Unlock()
				case !errors.Is(err, store.ErrCASConflict):
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("rewrap failed other than by losing: %v", err)
	}
	for _, d := range todo {
		if wins[d.ID] != 1 {
			t.Fatalf("dek %s swapped %d times, want exactly 1", d.ID, wins[d.ID])
		}
	}
	for _, d := range listNotAt(t, s1, f.Key, "", 100) {
		if d.Version() != v2 || d.Previous == nil || d.Previous.KID != f.KID(f.Version) {
			t.Fatalf("dek %s at %s, previous %+v", d.ID, d.Version(), d.Previous)
		}
	}
	s3 := f.store(nil)
	for id, recs := range want {
		readsBack(t, s3, id, recs)
	}
}

// A record written under a DEK wrapped by version 1 reads after the DEK is
// re-wrapped to version 2, even with version 1 disabled.
func testRecordAfterRewrap(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 3)
	v2 := f.Rotate()
	for _, d := range listNotAt(t, s, f.Key, v2, 10) {
		if _, err := s.RewrapDEK(t.Context(), d, f.Key, true); err != nil {
			t.Fatal(err)
		}
	}
	f.SetEnabled(f.Version, false)
	f.ResetCalls()
	readsBack(t, f.store(nil), "a", want)
	if n := f.Unwraps(); n != 1 {
		t.Fatalf("%d unwraps for one dek, want 1", n)
	}
}

// A rewrap keeps the wrapping it replaced, and rolling back restores it.
func testRollback(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 2)
	d := activeDEK(t, s, "a")
	err := s.RollbackWrapping(t.Context(), d.ID, d.Current.KID)
	wantErr(t, err, store.ErrNoPrevious)
	v2 := f.Rotate()
	w, err := s.RewrapDEK(t.Context(), d, f.Key, true)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, s.RollbackWrapping(t.Context(), d.ID, d.Current.KID), store.ErrCASConflict)
	if err := s.RollbackWrapping(t.Context(), d.ID, w.KID); err != nil {
		t.Fatal(err)
	}
	back := activeDEK(t, s, "a")
	if back.Current.KID != d.Current.KID || string(back.Current.Value) != string(d.Current.Value) ||
		back.Previous == nil || back.Previous.KID != f.KID(v2) {
		t.Fatalf("after rollback: current %s, previous %+v", back.Current.KID, back.Previous)
	}
	f.SetEnabled(v2, false)
	readsBack(t, f.store(nil), "a", want)
}

// A wrapping that unwraps to some other key is caught by the key check
// value before any record is decrypted with it, and rewrap refuses it too.
func testKCVVerified(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 2)
	d := activeDEK(t, s, "a")
	other := make([]byte, store.DEKSize)
	rand.Read(other)
	bad, err := f.KEK.Wrap(t.Context(), f.Key, other)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CompareAndSwapWrapping(t.Context(), d.ID, d.Current.KID, bad); err != nil {
		t.Fatal(err)
	}
	r := f.store(nil)
	_, err = r.Get(t.Context(), "a", "k00")
	wantErr(t, err, store.ErrIntegrity)
	wantErr(t, r.VerifyWrapping(t.Context(), d, bad), store.ErrIntegrity)
	wantErr(t, r.VerifyVersion(t.Context(), f.KID(f.Version)), store.ErrIntegrity)
	f.Rotate()
	_, err = r.RewrapDEK(t.Context(), activeDEK(t, s, "a"), f.Key, false)
	wantErr(t, err, store.ErrIntegrity)
	if err := s.RollbackWrapping(t.Context(), d.ID, bad.KID); err != nil {
		t.Fatal(err)
	}
	readsBack(t, r, "a", want)
	if err := r.VerifyVersion(t.Context(), f.KID(f.Version)); err != nil {
		t.Fatalf("verify version after rollback: %v", err)
	}
}

// CompleteRewrap records the version and writes its events only once every
// DEK has moved, in one step.
func testCompleteRewrap(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	f.addTenant(s, "b")
	v2 := f.Rotate()
	todo := listNotAt(t, s, f.Key, v2, 10)
	if _, err := s.RewrapDEK(t.Context(), todo[0], f.Key, false); err != nil {
		t.Fatal(err)
	}
	evs := func() []cmkd.StatusEvent {
		return []cmkd.StatusEvent{{Tenant: "a"}, {Tenant: "b"}}
	}
	wantErr(t, s.CompleteRewrap(t.Context(), f.Key, v2, evs()...), store.ErrRewrapIncomplete)
	if es := claimAll(t, s); len(es) != 0 {
		t.Fatalf("incomplete rewrap wrote events %v", kinds(es))
	}
	if _, err := s.RewrapDEK(t.Context(), todo[1], f.Key, false); err != nil {
		t.Fatal(err)
	}
	if err := s.CompleteRewrap(t.Context(), f.Key, v2, evs()...); err != nil {
		t.Fatal(err)
	}
	es := claimAll(t, s)
	if len(es) != 2 || es[0].Event.Kind != cmkd.KindRewrapCompleted || es[0].Event.Tenant != "a" || es[1].Event.Tenant != "b" {
		t.Fatalf("events after complete rewrap: %+v", es)
	}
	for _, id := range []string{"a", "b"} {
		if tn, err := s.Tenant(t.Context(), id); err != nil || tn.KeyVersion != v2 {
			t.Fatalf("tenant %s key version %q, want %s (%v)", id, tn.KeyVersion, v2, err)
		}
	}
}
