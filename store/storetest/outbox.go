package storetest

import (
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var outboxCases = []testCase{
	{"OutboxClaimAndMarkSent", testOutboxClaim},
	{"OutboxClaimKeepsTenantOrder", testOutboxTenantOrder},
	{"OutboxDuplicateIDsIgnored", testOutboxDuplicates},
	{"OutboxWrittenWithStateChange", testOutboxWithState},
}

func testOutboxClaim(t *testing.T, f *fixture) {
	s := f.store(nil)
	ctx := t.Context()
	for _, e := range [][2]string{{"e1", "a"}, {"e2", "a"}, {"e3", "b"}} {
		if err := s.AppendOutbox(ctx, cmkd.StatusEvent{ID: e[0], Kind: cmkd.KindKeyNearExpiry, Tenant: e[1]}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := s.ClaimOutbox(ctx, "relay-1", 2, time.Minute)
	if err != nil || len(first) != 2 || first[0].Event.ID != "e1" || first[1].Event.ID != "e2" || first[0].Seq >= first[1].Seq {
		t.Fatalf("first claim = %+v, %v", first, err)
	}
	e := first[0].Event
	if e.Kind != cmkd.KindKeyNearExpiry || e.Tenant != "a" || !e.Time.Equal(f.Clock.Now()) || first[0].Attempts != 1 {
		t.Fatalf("claimed event %+v", first[0])
	}
	second, err := s.ClaimOutbox(ctx, "relay-2", 10, time.Minute)
	if err != nil || len(second) != 1 || second[0].Event.ID != "e3" {
		t.Fatalf("a second relay claimed %+v, %v; want only e3", second, err)
	}
	if err := s.MarkSent(ctx, "e1"); err != nil {
		t.Fatal(err)
	}
	f.Clock.Add(time.Minute)
	again, err := s.ClaimOutbox(ctx, "relay-2", 10, time.Minute)
	if err != nil || len(again) != 2 || again[0].Event.ID != "e2" || again[1].Event.ID != "e3" || again[0].Attempts != 2 {
		t.Fatalf("after the claims expired: %+v, %v; want e2, e3 on attempt 2", again, err)
	}
	if err := s.MarkSent(ctx, "e2", "e3"); err != nil {
		t.Fatal(err)
	}
	f.Clock.Add(time.Hour)
	if es := claimAll(t, s); len(es) != 0 {
		t.Fatalf("sent events claimed again: %+v", es)
	}
}

// A claim never passes a tenant's earlier unsent event that another relay
// holds: that relay may have died with it, and the later events would
// reach the stream first (found by the chaos harness: a kill -9 between
// the claim and the publish put a tenant's rewrap.started after its
// rewrap.completed).
func testOutboxTenantOrder(t *testing.T, f *fixture) {
	s := f.store(nil)
	ctx := t.Context()
	for _, e := range [][2]string{{"a1", "a"}, {"b1", "b"}, {"a2", "a"}, {"c1", "c"}} {
		if err := s.AppendOutbox(ctx, cmkd.StatusEvent{ID: e[0], Kind: cmkd.KindKeyNearExpiry, Tenant: e[1]}); err != nil {
			t.Fatal(err)
		}
	}
	held, err := s.ClaimOutbox(ctx, "relay-1", 1, time.Minute)
	if err != nil || len(held) != 1 || held[0].Event.ID != "a1" {
		t.Fatalf("first claim = %+v, %v; want a1", held, err)
	}
	other, err := s.ClaimOutbox(ctx, "relay-2", 10, time.Minute)
	if err != nil || ids(other) != "b1 c1" {
		t.Fatalf("while relay-1 holds a1, relay-2 claimed %q (%v); want b1 c1, not a's later a2", ids(other), err)
	}
	f.Clock.Add(time.Minute) // relay-1 died: its claim runs out
	if err := s.MarkSent(ctx, "b1", "c1"); err != nil {
		t.Fatal(err)
	}
	again, err := s.ClaimOutbox(ctx, "relay-2", 10, time.Minute)
	if err != nil || ids(again) != "a1 a2" {
		t.Fatalf("after relay-1's claim ran out: %q, %v; want a1 a2", ids(again), err)
	}
}

func ids(es []store.OutboxEntry) string {
	var out []string
	for _, e := range es {
		out = append(out, e.Event.ID)
	}
	return strings.Join(out, " ")
}

// An event written twice (a retried transaction) is published once.
func testOutboxDuplicates(t *testing.T, f *fixture) {
	s := f.store(nil)
	ev := cmkd.StatusEvent{ID: "dup", Kind: cmkd.KindKeyExpired, Tenant: "a"}
	for range 2 {
		if err := s.AppendOutbox(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CompleteRewrap(t.Context(), f.Key, f.Version, cmkd.StatusEvent{ID: "dup"}); err != nil {
		t.Fatal(err)
	}
	if es := claimAll(t, s); len(es) != 1 || es[0].Event.Kind != cmkd.KindKeyExpired {
		t.Fatalf("claimed %+v, want the event once as first written", es)
	}
}

// Seal and unseal write their event exactly when they change state, and
// not at all when they fail.
func testOutboxWithState(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	if err := s.Seal(t.Context(), "nobody", reason, cmkd.StatusEvent{}); err == nil {
		t.Fatal("sealed a tenant that does not exist")
	}
	ev := cmkd.StatusEvent{ID: "seal-1", Key: f.Key, Version: f.Version, Cause: "ev-1"}
	if err := s.Seal(t.Context(), "a", reason, ev); err != nil {
		t.Fatal(err)
	}
	if err := s.Seal(t.Context(), "a", "again", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	es := claimAll(t, s)
	if len(es) != 1 {
		t.Fatalf("outbox %v, want one sealed event", kinds(es))
	}
	e := es[0].Event
	if e.ID != "seal-1" || e.Kind != cmkd.KindSealed || e.Tenant != "a" ||
		e.Reason != reason || e.Key != f.Key || e.Version != f.Version || e.Cause != "ev-1" {
		t.Fatalf("sealed event %+v", e)
	}
	if err := s.Unseal(t.Context(), "a", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if es := claimAll(t, s); len(es) != 1 || es[0].Event.Kind != cmkd.KindUnsealed {
		t.Fatalf("outbox %v, want one unsealed event", kinds(es))
	}
}
