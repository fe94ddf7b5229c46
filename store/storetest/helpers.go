package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

func (f *fixture) addTenant(s *store.Store, id string) {
	f.t.Helper()
	if _, err := s.AddTenant(f.t.Context(), id, f.Key); err != nil {
		f.t.Fatalf("add tenant %s: %v", id, err)
	}
}

func put(t *testing.T, s *store.Store, tenant, key string, value []byte) {
	t.Helper()
	if err := s.Put(t.Context(), tenant, key, value); err != nil {
		t.Fatalf("put %s/%s: %v", tenant, key, err)
	}
}

func get(t *testing.T, s *store.Store, tenant, key string) []byte {
	t.Helper()
	v, err := s.Get(t.Context(), tenant, key)
	if err != nil {
		t.Fatalf("get %s/%s: %v", tenant, key, err)
	}
	return v
}

// putMany writes n records "k00".. with distinct values and returns them.
func putMany(t *testing.T, s *store.Store, tenant string, n int) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for i := range n {
		key := fmt.Sprintf("k%02d", i)
		want[key] = fmt.Appendf(nil, "%s/%s: %x", tenant, key, i*7919)
		put(t, s, tenant, key, want[key])
	}
	return want
}

// readsBack checks that every record reads back byte-identical and that
// List shows exactly them.
func readsBack(t *testing.T, s *store.Store, tenant string, want map[string][]byte) {
	t.Helper()
	for k, v := range want {
		if got := get(t, s, tenant, k); !bytes.Equal(got, v) {
			t.Fatalf("get %s/%s = %q, want %q", tenant, k, got, v)
		}
	}
	keys, err := s.List(t.Context(), tenant, "", 0)
	if err != nil {
		t.Fatalf("list %s: %v", tenant, err)
	}
	if len(keys) != len(want) {
		t.Fatalf("list %s = %v, want %d keys", tenant, keys, len(want))
	}
}

func wantErr(t *testing.T, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("err = %v, want %v", err, target)
	}
}

// wantSealed checks that err is the sealed error of tenant with reason.
func wantSealed(t *testing.T, err error, tenant, reason string) *store.SealedError {
	t.Helper()
	wantErr(t, err, store.ErrSealed)
	var se *store.SealedError
	if !errors.As(err, &se) {
		t.Fatalf("err %v is not a *store.SealedError", err)
	}
	if se.Tenant != tenant || se.Reason != reason || se.Since.IsZero() {
		t.Fatalf("sealed error = %+v, want tenant %s reason %q and a time", se, tenant, reason)
	}
	return se
}

func deks(t *testing.T, s *store.Store, tenant string) []store.DEK {
	t.Helper()
	ds, err := s.Backend().TenantDEKs(t.Context(), tenant, "", 100)
	if err != nil {
		t.Fatalf("tenant deks: %v", err)
	}
	return ds
}

func activeDEK(t *testing.T, s *store.Store, tenant string) store.DEK {
	t.Helper()
	d, err := s.Backend().ActiveDEK(t.Context(), tenant)
	if err != nil {
		t.Fatalf("active dek: %v", err)
	}
	return d[0]
}

// claimAll claims every claimable outbox entry and marks it sent, as a
// relay that published them would: a tenant's later entries are not
// claimable while its earlier ones are held.
func claimAll(t *testing.T, s *store.Store) []store.OutboxEntry {
	t.Helper()
	es, err := s.ClaimOutbox(t.Context(), "test", 1000, 1<<40)
	if err != nil {
		t.Fatalf("claim outbox: %v", err)
	}
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.Event.ID
	}
	if err := s.MarkSent(t.Context(), ids...); err != nil {
		t.Fatalf("mark sent: %v", err)
	}
	return es
}

func kinds(es []store.OutboxEntry) []cmkd.Kind {
	var out []cmkd.Kind
	for _, e := range es {
		out = append(out, e.Event.Kind)
	}
	return out
}

func errorsIs(err, target error) bool { return errors.Is(err, target) }

func contextWithCancel(t *testing.T) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return ctx, cancel
}
