package postgres_test

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
)

// Two relays in two processes claiming at once never claim one entry
// twice, and together claim every entry, each batch in write order.
func TestOutboxClaimsDoNotOverlap(t *testing.T) {
	t.Parallel()
	s := pgtest.NewSchema(t)
	b1, b2 := open(t, s), open(t, s)
	const n = 300
	evs := make([]cmkd.StatusEvent, n)
	for i := range evs {
		// A tenant each: a tenant's later events wait for its earlier
		// ones' claim (OutboxClaimKeepsTenantOrder), and none is sent here.
		evs[i] = cmkd.StatusEvent{ID: fmt.Sprintf("e%03d", i), Tenant: fmt.Sprintf("t%03d", i), Kind: cmkd.KindKeyNearExpiry, Time: time.Now()}
	}
	if err := b1.AppendOutbox(t.Context(), evs); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var mu sync.Mutex
	claimed := map[string]string{}
	var wg sync.WaitGroup
	for i, b := range []*postgres.Backend{b1, b2, b1, b2} {
		holder := fmt.Sprintf("relay-%d", i)
		wg.Go(func() {
			for {
				es, err := b.ClaimOutbox(t.Context(), holder, 7, now, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(es) == 0 {
					return
				}
				if !slices.IsSortedFunc(es, func(x, y store.OutboxEntry) int { return int(x.Seq - y.Seq) }) {
					t.Errorf("claim not in write order: %+v", es)
				}
				mu.Lock()
				for _, e := range es {
					if other, ok := claimed[e.Event.ID]; ok {
						t.Errorf("%s claimed by %s and %s", e.Event.ID, other, holder)
					}
					claimed[e.Event.ID] = holder
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(claimed) != n {
		t.Fatalf("%d of %d entries claimed", len(claimed), n)
	}
}

// Holders racing in two processes for one free lease: exactly one gets
// it; the rest are told who holds it. Each later acquisition, after a
// release or an expiry, gets a larger token.
func TestLeaseRace(t *testing.T) {
	t.Parallel()
	s := pgtest.NewSchema(t)
	bs := []*postgres.Backend{open(t, s), open(t, s)}
	now := time.Now()
	var wg sync.WaitGroup
	const holders = 16
	got := make([]store.Lease, holders)
	errs := make([]error, holders)
	for i := range holders {
		wg.Go(func() {
			got[i], errs[i] = bs[i%2].AcquireLease(t.Context(), "key:k", fmt.Sprintf("h%d", i), now, time.Minute)
		})
	}
	wg.Wait()
	var winner store.Lease
	for i, err := range errs {
		switch {
		case err == nil && winner.Holder == "":
			winner = got[i]
		case err == nil:
			t.Fatalf("both %s and %s acquired the lease", winner.Holder, got[i].Holder)
		case !errors.Is(err, store.ErrLeaseHeld):
			t.Fatalf("acquire: %v, want ErrLeaseHeld", err)
		}
	}
	if winner.Holder == "" {
		t.Fatal("nobody acquired the lease")
	}
	last := winner.Token
	for i := range 4 {
		b := bs[i%2]
		if i%2 == 0 {
			if err := b.ReleaseLease(t.Context(), winner); err != nil {
				t.Fatal(err)
			}
		} else {
			now = now.Add(2 * time.Minute) // expired, not released
		}
		l, err := b.AcquireLease(t.Context(), "key:k", winner.Holder, now, time.Minute)
		if err != nil || l.Token <= last {
			t.Fatalf("acquisition %d: %+v, %v; want a token above %d", i, l, err, last)
		}
		winner, last = l, l.Token
	}
}

// Record keys are bytes: any key the Store accepts round-trips, and keys
// list in byte order, whatever the database's collation.
func TestRecordKeysAreBytes(t *testing.T) {
	t.Parallel()
	s := pgtest.NewSchema(t)
	b := open(t, s)
	d := addTenant(t, b, "a")
	keys := []string{"B", "a", "a\x00b", "\xff\xfe", "é", "Z", "_"}
	for _, k := range keys {
		if err := b.PutRecord(t.Context(), "a", k, d.ID, []byte(k)); err != nil {
			t.Fatalf("put %q: %v", k, err)
		}
	}
	for _, k := range keys {
		if v, err := b.GetRecord(t.Context(), "a", k); err != nil || !bytes.Equal(v, []byte(k)) {
			t.Fatalf("get %q = %q, %v", k, v, err)
		}
	}
	listed, err := b.ListRecords(t.Context(), "a", "", 100)
	want := slices.Sorted(slices.Values(keys))
	if err != nil || !slices.Equal(listed, want) {
		t.Fatalf("list = %q, %v; want %q", listed, err, want)
	}
	if v, err := b.GetRecord(t.Context(), "a", "a"); err != nil || v == nil {
		t.Fatalf("an existing record reads %v, %v", v, err)
	}
	if err := b.PutRecord(t.Context(), "a", "empty", d.ID, nil); err != nil {
		t.Fatal(err)
	}
	if v, err := b.GetRecord(t.Context(), "a", "empty"); err != nil || len(v) != 0 {
		t.Fatalf("empty record = %q, %v", v, err)
	}
}

// An event's data goes out as it came in, whatever its strings hold.
func TestOutboxKeepsEventData(t *testing.T) {
	t.Parallel()
	s := pgtest.NewSchema(t)
	b := open(t, s)
	ev := cmkd.StatusEvent{ID: "e", Tenant: "a", Kind: cmkd.KindSealed, Time: time.Unix(1, 2).UTC(),
		Key: testKey, Version: "v1", Reason: "nul \x00, quote \", emoji 🔑", Expires: time.Unix(3, 4).UTC(),
		DEKs: &cmkd.DEKCounts{Total: 5, Rewrapped: 4, Duration: 2 * time.Second}}
	if err := b.AppendOutbox(t.Context(), []cmkd.StatusEvent{ev}); err != nil {
		t.Fatal(err)
	}
	es, err := b.ClaimOutbox(t.Context(), "relay", 10, time.Now(), time.Minute)
	if err != nil || len(es) != 1 {
		t.Fatalf("claimed %+v, %v", es, err)
	}
	got := es[0].Event
	if got.ID != ev.ID || got.Reason != ev.Reason || !got.Time.Equal(ev.Time) || !got.Expires.Equal(ev.Expires) ||
		got.Key != ev.Key || *got.DEKs != *ev.DEKs {
		t.Fatalf("claimed %+v, want %+v", got, ev)
	}
}
