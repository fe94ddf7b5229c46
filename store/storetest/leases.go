package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/store"
)

var leaseCases = []testCase{
	{"LeaseHolderExpiryFencing", testLease},
}

// One holder at a time; renewal keeps the token; a lease taken over after
// expiry gets a larger token and the old holder learns it lost.
func testLease(t *testing.T, f *fixture) {
	a, b := f.store(nil), f.store(nil)
	ctx := t.Context()
	name := f.Key.LeaseName()
	la, err := a.AcquireLease(ctx, name, "a", time.Minute)
	if err != nil || la.Holder != "a" || la.Token <= 0 || !la.Expires.Equal(f.Clock.Now().Add(time.Minute)) {
		t.Fatalf("acquire = %+v, %v", la, err)
	}
	_, err = b.AcquireLease(ctx, name, "b", time.Minute)
	wantErr(t, err, store.ErrLeaseHeld)
	// The refusal says whose lease it is and until when: a replica comes
	// back for the key when it runs out.
	var held *store.LeaseHeldError
	if !errors.As(err, &held) || held.Lease.Name != name || held.Lease.Holder != "a" || !held.Lease.Expires.Equal(la.Expires) {
		t.Fatalf("refusal %v (%+v), want a LeaseHeldError naming a's lease until %s", err, held, la.Expires)
	}
	f.Clock.Add(30 * time.Second)
	again, err := a.AcquireLease(ctx, name, "a", time.Minute)
	if err != nil || again.Token != la.Token {
		t.Fatalf("re-acquire by the holder = %+v, %v; want token %d kept", again, err, la.Token)
	}
	la, err = a.RenewLease(ctx, la, time.Minute)
	if err != nil || la.Token != again.Token || !la.Expires.Equal(f.Clock.Now().Add(time.Minute)) {
		t.Fatalf("renew = %+v, %v", la, err)
	}
	wantErr(t, a.CheckLease(ctx, la), nil)

	f.Clock.Add(time.Minute)
	wantErr(t, a.CheckLease(ctx, la), store.ErrLeaseLost)
	lb, err := b.AcquireLease(ctx, name, "b", time.Minute)
	if err != nil || lb.Token <= la.Token {
		t.Fatalf("take-over = %+v, %v; want a token above %d", lb, err, la.Token)
	}
	_, err = a.RenewLease(ctx, la, time.Minute)
	wantErr(t, err, store.ErrLeaseLost)
	wantErr(t, a.ReleaseLease(ctx, la), nil)
	wantErr(t, b.CheckLease(ctx, lb), nil) // a's stale release freed nothing

	wantErr(t, b.ReleaseLease(ctx, lb), nil)
	wantErr(t, b.CheckLease(ctx, lb), store.ErrLeaseLost)
	la2, err := a.AcquireLease(ctx, name, "a", time.Minute)
	if err != nil || la2.Token <= lb.Token {
		t.Fatalf("acquire after release = %+v, %v; want a token above %d", la2, err, lb.Token)
	}
	if other, err := b.AcquireLease(ctx, "key:other", "b", time.Minute); err != nil || other.Holder != "b" {
		t.Fatalf("leases are per name: %+v, %v", other, err)
	}
	// A released lease is gone: no row is left behind for every name ever
	// leased.
	wantErr(t, a.ReleaseLease(ctx, la2), nil)
	ls, err := a.Leases(ctx)
	if err != nil || len(ls) != 1 || ls[0].Name != "key:other" {
		t.Fatalf("leases after releasing %s: %+v, %v; want only key:other", name, ls, err)
	}
}
