package postgres_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store"
)

// sealUncommitted seals tenant in a transaction of another connection, as
// a seal under way in another replica, and returns its commit.
func sealUncommitted(t *testing.T, s pgtest.Schema, tenant, reason string) func() {
	t.Helper()
	tx, err := raw(t, s).Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(t.Context(), `UPDATE tenants SET state = 'sealed', seal_reason = $2, sealed_at = $3 WHERE id = $1`,
		tenant, reason, time.Now().UnixNano()); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := tx.Commit(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
}

// A write that starts while a seal is under way waits for it and then
// fails as sealed: it cannot land after the seal has committed, which a
// check of the state as of the write's start would let it do.
func TestWriteWaitsForSealUnderWay(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		write func(b store.Backend, d store.DEK) error
	}{
		{"PutRecord", func(b store.Backend, d store.DEK) error {
			err := b.PutRecord(t.Context(), d.Tenant, "k", d.ID, []byte("late"))
			return err
		}},
		{"DeleteRecord", func(b store.Backend, d store.DEK) error { return b.DeleteRecord(t.Context(), d.Tenant, "k") }},
		{"InsertDEK", func(b store.Backend, d store.DEK) error {
			d.ID += "-next"
			return b.InsertDEK(t.Context(), store.OneLayer(d))
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := pgtest.NewSchema(t)
			app := appName(s)
			b := openAs(t, s, app)
			d := addTenant(t, b, "a")
			if err := b.PutRecord(t.Context(), "a", "k", d.ID, []byte("before")); err != nil {
				t.Fatal(err)
			}
			commit := sealUncommitted(t, s, "a", "key disabled")
			done := async(func() error { return c.write(b, d) })
			waitBlocked(t, s, app, "")
			notYet(t, done, c.name)
			commit()
			err := await(t, done, c.name)
			var se *store.SealedError
			if !errors.As(err, &se) || se.Tenant != "a" || se.Reason != "key disabled" || se.Since.IsZero() {
				t.Fatalf("%s after the seal committed = %v, want the seal's *store.SealedError", c.name, err)
			}
			var value []byte
			var deks int
			if err := raw(t, s).QueryRow(t.Context(), `SELECT (SELECT value FROM records WHERE tenant = 'a'),
				(SELECT count(*) FROM deks WHERE tenant = 'a')`).Scan(&value, &deks); err != nil {
				t.Fatal(err)
			}
			if string(value) != "before" || deks != 1 {
				t.Fatalf("after the refused %s: record %q, %d deks; want them as before the seal", c.name, value, deks)
			}
		})
	}
}

// A seal waits for the writes of the tenant in flight (here one holding
// the share lock every write takes), so that when it returns no write of
// the tenant is still to land.
func TestSealWaitsForWritesInFlight(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		seal func(b store.Backend) error
	}{
		{"SetTenantState", func(b store.Backend) error {
			_, err := b.SetTenantState(t.Context(), "a", store.StateSealed, "key disabled", time.Now(), cmkd.StatusEvent{ID: "e", Tenant: "a", Kind: cmkd.KindSealed})
			return err
		}},
		{"SealTenants", func(b store.Backend) error {
			_, err := b.SealTenants(t.Context(), "key disabled", time.Now(), []cmkd.StatusEvent{{ID: "e", Tenant: "a", Kind: cmkd.KindSealed}})
			return err
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := pgtest.NewSchema(t)
			app := appName(s)
			b := openAs(t, s, app)
			d := addTenant(t, b, "a")
			tx, err := raw(t, s).Begin(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(t.Context(), `SELECT FROM tenants WHERE id = 'a' FOR SHARE`); err != nil {
				t.Fatal(err)
			}
			if _, err := tx.Exec(t.Context(), `INSERT INTO records (tenant, key, dek_id, value) VALUES ('a', 'k', $1, 'in flight')`, d.ID); err != nil {
				t.Fatal(err)
			}
			done := async(func() error { return c.seal(b) })
			waitBlocked(t, s, app, "")
			notYet(t, done, c.name)
			if err := tx.Commit(t.Context()); err != nil {
				t.Fatal(err)
			}
			if err := await(t, done, c.name); err != nil {
				t.Fatal(err)
			}
			_, err = b.GetRecord(t.Context(), "a", "k")
			if !errors.Is(err, store.ErrSealed) {
				t.Fatalf("read after the seal: %v, want ErrSealed", err)
			}
		})
	}
}

// A sealed tenant's reads fail with the seal's reason and time as
// written, and its blobs are not returned.
func TestSealedReadsReturnNoBlob(t *testing.T) {
	t.Parallel()
	s := pgtest.NewSchema(t)
	b := open(t, s)
	d := addTenant(t, b, "a")
	if err := b.PutRecord(t.Context(), "a", "k", d.ID, []byte("secret")); err != nil {
		t.Fatal(err)
	}
	since := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	if _, err := b.SetTenantState(t.Context(), "a", store.StateSealed, "revoked", since, cmkd.StatusEvent{ID: "e", Tenant: "a", Kind: cmkd.KindSealed}); err != nil {
		t.Fatal(err)
	}
	blob, err := b.GetRecord(t.Context(), "a", "k")
	var se *store.SealedError
	if blob != nil || !errors.As(err, &se) || se.Reason != "revoked" || !se.Since.Equal(since) {
		t.Fatalf("read of a sealed tenant = %q, %v; want no blob and the seal of %s", blob, err, since)
	}
	for name, err := range map[string]error{
		"ActiveDEK":   func() error { _, err := b.ActiveDEK(t.Context(), "a"); return err }(),
		"GetDEK":      func() error { _, err := b.GetDEK(t.Context(), "a", d.ID); return err }(),
		"ListRecords": func() error { _, err := b.ListRecords(t.Context(), "a", "", 10); return err }(),
	} {
		if !errors.As(err, &se) || !se.Since.Equal(since) {
			t.Errorf("%s of a sealed tenant: %v", name, err)
		}
	}
}
