package storetest

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// sinkEG is the sink these cases use besides NATS.
const sinkEG = "eventgrid"

var outboxSinkCases = []testCase{
	{"OutboxSinksProgressIndependently", testSinksIndependent},
	{"OutboxSinkStartsAtFirstClaim", testSinkStart},
	{"OutboxSinkKeepsTenantOrder", testSinkTenantOrder},
	{"OutboxSinkGiveUpUnblocksTenant", testSinkGiveUp},
	{"OutboxSinkDuplicateIDsIgnored", testSinkDuplicates},
	{"OutboxSinkConcurrentClaimersNeverShare", testSinkConcurrentClaims},
	{"OutboxSinkRegistersWithoutGapUnderWrites", testSinkRegisterUnderWrites},
}

func appendEvents(t *testing.T, s *store.Store, evs ...[2]string) {
	t.Helper()
	for _, e := range evs {
		if err := s.AppendOutbox(t.Context(), cmkd.StatusEvent{ID: e[0], Kind: cmkd.KindKeyNearExpiry, Tenant: e[1]}); err != nil {
			t.Fatal(err)
		}
	}
}

func claimFor(t *testing.T, s *store.Store, sink, holder string, limit int) []store.OutboxEntry {
	t.Helper()
	es, err := s.ClaimOutboxFor(t.Context(), sink, holder, limit, time.Minute)
	if err != nil {
		t.Fatalf("claim for %s: %v", sink, err)
	}
	return es
}

func markFor(t *testing.T, s *store.Store, sink string, ids ...string) {
	t.Helper()
	if err := s.MarkSentFor(t.Context(), sink, ids...); err != nil {
		t.Fatalf("mark sent for %s: %v", sink, err)
	}
}

func pending(t *testing.T, s *store.Store, sink string) int64 {
	t.Helper()
	n, err := s.OutboxPending(t.Context(), sink)
	if err != nil {
		t.Fatalf("pending for %s: %v", sink, err)
	}
	return n
}

// One sink claiming and marking leaves the other's entries pending: an
// outage of one sink must not hold up, or lose entries for, the other.
func testSinksIndependent(t *testing.T, f *fixture) {
	s := f.store(nil)
	if es := claimFor(t, s, sinkEG, "r1", 10); len(es) != 0 { // registers
		t.Fatalf("a new sink claimed %q", ids(es))
	}
	appendEvents(t, s, [2]string{"e1", "a"}, [2]string{"e2", "a"}, [2]string{"e3", "b"})
	got := claimFor(t, s, sinkEG, "r1", 10)
	if ids(got) != "e1 e2 e3" || got[0].Attempts != 1 || got[0].Event.Kind != cmkd.KindKeyNearExpiry ||
		got[0].Event.Tenant != "a" || !got[0].Event.Time.Equal(f.Clock.Now()) {
		t.Fatalf("sink claimed %+v", got)
	}
	markFor(t, s, sinkEG, "e1", "e2", "e3")
	if n, m := pending(t, s, sinkEG), pending(t, s, store.NATSSink); n != 0 || m != 3 {
		t.Fatalf("pending: %s %d, nats %d; want 0 and 3", sinkEG, n, m)
	}
	// NATS has all three still, through the old API and the new.
	if es := claimFor(t, s, store.NATSSink, "r1", 1); ids(es) != "e1" {
		t.Fatalf("nats claimed %q, want e1", ids(es))
	}
	markFor(t, s, store.NATSSink, "e1")
	if es := claimAll(t, s); ids(es) != "e2 e3" {
		t.Fatalf("nats claimed %q, want e2 e3", ids(es))
	}
	appendEvents(t, s, [2]string{"e4", "a"})
	if n, m := pending(t, s, sinkEG), pending(t, s, store.NATSSink); n != 1 || m != 1 {
		t.Fatalf("pending after e4: %s %d, nats %d; want 1 and 1", sinkEG, n, m)
	}
	f.Clock.Add(time.Hour)
	if es := claimFor(t, s, sinkEG, "r2", 10); ids(es) != "e4" {
		t.Fatalf("sink claimed %q after marking, want only e4", ids(es))
	}
}

// A sink gets every entry written after its first claim, none before, and
// a second sink registered later starts later.
func testSinkStart(t *testing.T, f *fixture) {
	s := f.store(nil)
	appendEvents(t, s, [2]string{"old", "a"})
	if es := claimFor(t, s, sinkEG, "r1", 10); len(es) != 0 {
		t.Fatalf("a new sink claimed history %q", ids(es))
	}
	appendEvents(t, s, [2]string{"new1", "a"})
	if es := claimFor(t, s, "other", "r1", 10); len(es) != 0 {
		t.Fatalf("a sink registered after new1 claimed %q", ids(es))
	}
	appendEvents(t, s, [2]string{"new2", "a"})
	if es := claimFor(t, f.store(nil), sinkEG, "r1", 10); ids(es) != "new1 new2" {
		t.Fatalf("%s claimed %q, want new1 new2", sinkEG, ids(es))
	}
	if es := claimFor(t, s, "other", "r1", 10); ids(es) != "new2" {
		t.Fatalf("other claimed %q, want new2", ids(es))
	}
	// Registered ahead of its relay, a sink gets what is written before
	// its first claim.
	if err := s.RegisterOutboxSink(t.Context(), "third"); err != nil {
		t.Fatal(err)
	}
	appendEvents(t, s, [2]string{"new3", "b"})
	if es := claimFor(t, s, "third", "r1", 10); ids(es) != "new3" {
		t.Fatalf("third claimed %q, want new3", ids(es))
	}
	if _, err := s.ClaimOutboxFor(t.Context(), "Bad Name", "r1", 1, time.Minute); err == nil {
		t.Fatal("claimed for an invalid sink name")
	}
}

// The per-tenant order rule holds per sink: a claim never passes a
// tenant's earlier entry another claim of the sink holds, and a hold of
// one sink does not hold up the other.
func testSinkTenantOrder(t *testing.T, f *fixture) {
	s := f.store(nil)
	claimFor(t, s, sinkEG, "r0", 1)
	appendEvents(t, s, [2]string{"a1", "a"}, [2]string{"b1", "b"}, [2]string{"a2", "a"}, [2]string{"c1", "c"})
	if held := claimFor(t, s, sinkEG, "r1", 1); ids(held) != "a1" {
		t.Fatalf("first claim = %q; want a1", ids(held))
	}
	if other := claimFor(t, f.store(nil), sinkEG, "r2", 10); ids(other) != "b1 c1" {
		t.Fatalf("while r1 holds a1, r2 claimed %q; want b1 c1, not a's later a2", ids(other))
	}
	if es := claimAll(t, s); ids(es) != "a1 b1 a2 c1" {
		t.Fatalf("nats claimed %q while the other sink held a1; want all four", ids(es))
	}
	f.Clock.Add(time.Minute) // r1 died: its claim runs out
	markFor(t, s, sinkEG, "b1", "c1")
	if again := claimFor(t, s, sinkEG, "r2", 10); ids(again) != "a1 a2" || again[0].Attempts != 2 || again[1].Attempts != 1 {
		t.Fatalf("after r1's claim ran out: %+v; want a1 (attempt 2) a2 (attempt 1)", again)
	}
}

// An entry given up for a sink (one it can never accept) is done for it:
// never claimed again, not pending, and its tenant's later entries are
// claimable while its claim would still run; NATS still has it.
func testSinkGiveUp(t *testing.T, f *fixture) {
	s := f.store(nil)
	claimFor(t, s, sinkEG, "r0", 1)
	appendEvents(t, s, [2]string{"big", "a"}, [2]string{"a2", "a"})
	if es := claimFor(t, s, sinkEG, "r1", 1); ids(es) != "big" {
		t.Fatalf("claimed %q, want big", ids(es))
	}
	if err := s.GiveUpFor(t.Context(), sinkEG, "larger than a request may be", "big"); err != nil {
		t.Fatal(err)
	}
	if es := claimFor(t, s, sinkEG, "r2", 10); ids(es) != "a2" {
		t.Fatalf("after giving up big, claimed %q; want a2", ids(es))
	}
	if n := pending(t, s, sinkEG); n != 1 {
		t.Fatalf("%d pending, want 1 (a2)", n)
	}
	if err := s.GiveUpFor(t.Context(), sinkEG, "", "a2"); err == nil {
		t.Fatal("gave up without a reason")
	}
	if err := s.GiveUpFor(t.Context(), store.NATSSink, "r", "a2"); err == nil {
		t.Fatal("gave up for nats, which has nowhere to record it")
	}
	if es := claimAll(t, s); ids(es) != "big a2" {
		t.Fatalf("nats claimed %q, want big a2", ids(es))
	}
}

// An event written twice, or with a state change and again, gets one
// delivery per sink.
func testSinkDuplicates(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	claimFor(t, s, sinkEG, "r0", 1)
	appendEvents(t, s, [2]string{"dup", "a"}, [2]string{"dup", "a"})
	if err := s.Seal(t.Context(), "a", reason, cmkd.StatusEvent{ID: "seal"}); err != nil {
		t.Fatal(err)
	}
	if err := s.Seal(t.Context(), "a", reason, cmkd.StatusEvent{ID: "seal"}); err != nil {
		t.Fatal(err)
	}
	if es := claimFor(t, s, sinkEG, "r1", 10); ids(es) != "dup seal" || es[1].Event.Kind != cmkd.KindSealed {
		t.Fatalf("claimed %+v, want dup and the seal once each", es)
	}
}

// Claimers of one sink on separate connections, claiming while events
// are written, never hold one entry at once: every entry is claimed once
// (claims do not run out here), whoever claims it, and each claimer sees
// each tenant's entries in write order.
func testSinkConcurrentClaims(t *testing.T, f *fixture) {
	const claimers, writers, perWriter = 4, 3, 40
	stores := make([]*store.Store, claimers)
	for i := range stores {
		stores[i] = f.store(nil)
	}
	claimFor(t, stores[0], sinkEG, "r0", 1)
	var mu sync.Mutex
	claimedBy := map[string][]string{}
	var writing sync.WaitGroup
	for w := range writers {
		writing.Go(func() {
			for i := range perWriter {
				id := fmt.Sprintf("w%d-%03d", w, i)
				ev := cmkd.StatusEvent{ID: id, Kind: cmkd.KindKeyNearExpiry, Tenant: fmt.Sprintf("t%d", i%5)}
				if err := retry(t, func() error { return stores[w%claimers].AppendOutbox(t.Context(), ev) }); err != nil {
					t.Errorf("append %s: %v", id, err)
					return
				}
			}
		})
	}
	done := make(chan struct{})
	var claiming sync.WaitGroup
	for c := range claimers {
		claiming.Go(func() {
			claimLoop(t, stores[c], fmt.Sprintf("r%d", c), done, func(es []store.OutboxEntry) {
				mu.Lock()
				defer mu.Unlock()
				for _, e := range es {
					claimedBy[e.Event.ID] = append(claimedBy[e.Event.ID], fmt.Sprintf("r%d", c))
				}
			})
		})
	}
	writing.Wait()
	waitPending(t, stores[0], 0, func() { close(done); claiming.Wait() })
	for id, by := range claimedBy {
		if len(by) != 1 {
			t.Errorf("%s claimed by %v, want one claimer", id, by)
		}
	}
	if len(claimedBy) != writers*perWriter {
		t.Errorf("%d entries claimed, want %d", len(claimedBy), writers*perWriter)
	}
}

// claimLoop claims small batches of sinkEG and marks them, until done.
func claimLoop(t *testing.T, s *store.Store, holder string, done <-chan struct{}, got func([]store.OutboxEntry)) {
	for {
		select {
		case <-done:
			return
		default:
		}
		var es []store.OutboxEntry
		err := retry(t, func() (err error) {
			es, err = s.ClaimOutboxFor(t.Context(), sinkEG, holder, 3, time.Hour)
			return err
		})
		if err != nil {
			t.Errorf("%s: %v", holder, err)
			return
		}
		got(es)
		checkTenantOrder(t, es)
		var marked []string
		for _, e := range es {
			marked = append(marked, e.Event.ID)
		}
		if err := retry(t, func() error { return s.MarkSentFor(t.Context(), sinkEG, marked...) }); err != nil {
			t.Errorf("%s: %v", holder, err)
			return
		}
		// A relay's poll, shortened; a loop without pause starves
		// SQLite's writers, whose busy handler sleeps between tries.
		time.Sleep(2 * time.Millisecond)
	}
}

// retry calls fn until it succeeds, a few times, as a relay would: under
// -race on a busy machine, SQLite's busy timeout runs out now and then for
// one of the many handles this test hammers the file with, which is not
// what the test is about.
func retry(t *testing.T, fn func() error) error {
	var err error
	for range 10 {
		if err = fn(); err == nil {
			return nil
		}
		t.Logf("retrying: %v", err)
		time.Sleep(10 * time.Millisecond)
	}
	return err
}

// checkTenantOrder fails if a batch holds a tenant's entries out of write
// order (each writer writes its own ids in order).
func checkTenantOrder(t *testing.T, es []store.OutboxEntry) {
	last := map[string]int64{}
	for _, e := range es {
		if e.Seq <= last[e.Event.Tenant] {
			t.Errorf("batch %q is not in write order", ids(es))
		}
		last[e.Event.Tenant] = e.Seq
	}
}

// waitPending waits until want entries are pending for sinkEG, then calls
// stop, which it calls also when it gives up.
func waitPending(t *testing.T, s *store.Store, want int64, stop func()) {
	t.Helper()
	defer stop()
	deadline := time.Now().Add(30 * time.Second)
	for n := pending(t, s, sinkEG); n != want && !t.Failed(); n = pending(t, s, sinkEG) {
		if time.Now().After(deadline) {
			t.Fatalf("%d entries pending for %s, want %d", n, sinkEG, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A sink that registers while other connections write to the outbox gets
// exactly the entries after some point, with no gap: an entry written
// while the sink registered is either before its start or delivered.
func testSinkRegisterUnderWrites(t *testing.T, f *fixture) {
	const writers, after = 4, 10
	s := f.store(nil)
	var writing sync.WaitGroup
	var registered atomic.Bool
	var started sync.WaitGroup
	started.Add(writers)
	for w := range writers {
		ws := f.store(nil)
		writing.Go(func() {
			once := sync.OnceFunc(started.Done)
			defer once()
			// Each writes until it has written after entries since the
			// registration, so the sink is sure to start amid writes.
			for i, left := 0, after; left > 0; i++ {
				if registered.Load() {
					left--
				}
				id := fmt.Sprintf("w%d-%04d", w, i)
				if err := ws.AppendOutbox(t.Context(), cmkd.StatusEvent{ID: id, Kind: cmkd.KindKeyNearExpiry, Tenant: fmt.Sprintf("t%d", w)}); err != nil {
					t.Errorf("append %s: %v", id, err)
					return
				}
				time.Sleep(time.Millisecond) // room for the registration's turn
				if i == 5 {
					once()
				}
			}
		})
	}
	started.Wait()
	first := claimFor(t, s, sinkEG, "r1", 1) // registers amid the writes
	registered.Store(true)
	writing.Wait()
	sink := drainSink(t, s, first)
	var all []int64
	for es := claimAll(t, s); len(es) > 0; es = claimAll(t, s) {
		for _, e := range es {
			all = append(all, e.Seq)
		}
	}
	if len(sink) < writers*after {
		t.Fatalf("the sink got %d entries, want at least the %d written after it registered", len(sink), writers*after)
	}
	i := slices.Index(all, sink[0])
	if i < 0 || !slices.Equal(all[i:], sink) {
		t.Fatalf("the sink got seqs %v; want every entry from its first on, of 1..%d", sink, len(all))
	}
}

// drainSink claims and marks the sink's entries until none is pending and
// returns their seqs, sorted; first is a claim already made.
func drainSink(t *testing.T, s *store.Store, first []store.OutboxEntry) []int64 {
	t.Helper()
	var seqs []int64
	for es := first; ; es = claimFor(t, s, sinkEG, "r1", 1000) {
		for _, e := range es {
			seqs = append(seqs, e.Seq)
			markFor(t, s, sinkEG, e.Event.ID)
		}
		if len(es) == 0 && pending(t, s, sinkEG) == 0 {
			slices.Sort(seqs)
			return seqs
		}
	}
}

// MigratedOutbox checks a backend migrated from before sinks had delivery
// state of their own, whose outbox held an entry "sent" (sent) and one
// "unsent": what was sent stays sent for NATS, what was not is still
// NATS's to send, and a new sink starts after both.
func MigratedOutbox(t *testing.T, b store.Backend) {
	t.Helper()
	ctx, now := t.Context(), time.Now()
	if n, err := b.OutboxPending(ctx, store.NATSSink); err != nil || n != 1 {
		t.Fatalf("pending for nats after migration: %d, %v; want 1", n, err)
	}
	es, err := b.ClaimOutbox(ctx, "r1", 10, now, time.Minute)
	if err != nil || len(es) != 1 || es[0].Event.ID != "unsent" {
		t.Fatalf("nats claimed %+v, %v; want only the unsent entry", es, err)
	}
	if es, err := b.ClaimOutboxFor(ctx, "eventgrid", "r1", 10, now, time.Minute); err != nil || len(es) != 0 {
		t.Fatalf("a new sink claimed %+v, %v; want nothing written before it", es, err)
	}
	if err := b.AppendOutbox(ctx, []cmkd.StatusEvent{{ID: "new", Kind: cmkd.KindKeyExpired, Tenant: "a"}}); err != nil {
		t.Fatal(err)
	}
	if es, err := b.ClaimOutboxFor(ctx, "eventgrid", "r1", 10, now, time.Minute); err != nil || len(es) != 1 || es[0].Event.ID != "new" {
		t.Fatalf("the sink claimed %+v, %v; want the new entry", es, err)
	}
}
