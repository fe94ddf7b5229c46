package postgres_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
)

// raw connects to the schema without the backend, as an operator's psql
// or another program would; closed when the test ends.
func raw(t testing.TB, s pgtest.Schema) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(t.Context(), s.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// openAs opens a Backend whose connections carry application name app, so
// that the test can see in pg_stat_activity what they wait for.
func openAs(t testing.TB, s pgtest.Schema, app string) *postgres.Backend {
	t.Helper()
	b, err := postgres.Open(t.Context(), postgres.Config{DSN: pgtest.With(s.URL, "application_name", app), Schema: s.Name})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// appName is an application name unique to the schema's test, within
// the 63 bytes PostgreSQL keeps of one.
func appName(s pgtest.Schema) string { return "cmkd-test-" + s.Name[len(s.Name)-16:] }

// waitBlocked waits until a connection named app waits for a lock of kind
// (pg_stat_activity's wait_event: "advisory", "tuple", "transactionid"; ""
// for any).
func waitBlocked(t testing.TB, s pgtest.Schema, app, kind string) {
	t.Helper()
	c := raw(t, s)
	eventually.NoError(t, 10*time.Second, app+" waiting for a lock", func() (bool, error) {
		var n int
		err := c.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND wait_event_type = 'Lock' AND ($2 = '' OR wait_event = $2)`, app, kind).Scan(&n)
		return n > 0, err
	})
}

var testKey = cmkd.MustParseKeyID("https://v.vault.azure.net/keys/k")

func wrapped(v string) cmkd.Wrapped {
	return cmkd.Wrapped{KID: testKey.At(v), Alg: "RSA-OAEP-256", Value: []byte(v)}
}

// addTenant adds an active tenant with one DEK, "<id>-dek", at version v1.
func addTenant(t testing.TB, b store.Backend, id string) store.DEK {
	t.Helper()
	if err := b.AddTenant(t.Context(), store.Tenant{ID: id, Key: testKey, State: store.StateActive, CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	return addDEK(t, b, id, id+"-dek")
}

func addDEK(t testing.TB, b store.Backend, tenant, id string) store.DEK {
	t.Helper()
	d := store.DEK{ID: id, Tenant: tenant, Key: testKey, Current: wrapped("v1"), KCV: []byte("12345678"), Active: true, CreatedAt: time.Now()}
	if err := b.InsertDEK(t.Context(), store.OneLayer(d)); err != nil {
		t.Fatalf("insert dek %s: %v", id, err)
	}
	return d
}

// result is what a call running on another goroutine returned.
type result struct{ err error }

// async runs fn on another goroutine; its error arrives on the channel.
func async(fn func() error) <-chan result {
	c := make(chan result, 1)
	go func() { c <- result{fn()} }()
	return c
}

func await(t testing.TB, c <-chan result, what string) error {
	t.Helper()
	select {
	case r := <-c:
		return r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("%s still blocked", what)
		return fmt.Errorf("unreachable")
	}
}

// notYet fails if the call on c has returned: it should be blocked.
func notYet(t testing.TB, c <-chan result, what string) {
	t.Helper()
	select {
	case r := <-c:
		t.Fatalf("%s returned (%v) while it should wait", what, r.err)
	default:
	}
}
