package postgres_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store/postgres"
	"github.com/cmkd-io/cmkd/store/storetest"
)

// newBench holds the records through the encrypted store in one schema
// and in a plain table in another, on the same server, with the same
// durability (the server's synchronous_commit) and the same pool settings.
func newBench(b *testing.B) *storetest.RecordBench {
	b.Helper()
	enc, plain := pgtest.NewSchema(b), pgtest.NewSchema(b)
	be, err := postgres.Open(b.Context(), postgres.Config{DSN: enc.URL, Schema: enc.Name})
	if err != nil {
		b.Fatal(err)
	}
	return storetest.NewRecordBench(b, be, openPlain(b, plain))
}

// plain is a plain table read and written by one statement each, which
// pgx prepares once per connection, as it does the backend's.
type plain struct{ pool *pgxpool.Pool }

func openPlain(b *testing.B, s pgtest.Schema) *plain {
	pool, err := pgxpool.New(b.Context(), pgtest.With(s.DSN, "statement_timeout", "30000"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(pool.Close)
	if _, err := pool.Exec(b.Context(), `CREATE TABLE records (tenant text COLLATE "C", key bytea, value bytea,
		PRIMARY KEY (tenant, key))`); err != nil {
		b.Fatal(err)
	}
	return &plain{pool}
}

func (p *plain) Get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := p.pool.QueryRow(ctx, `SELECT value FROM records WHERE tenant = $1 AND key = $2`, "a", []byte(key)).Scan(&v)
	return v, err
}

func (p *plain) Put(ctx context.Context, key string, value []byte) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO records (tenant, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value`, "a", []byte(key), value)
	return err
}

func BenchmarkGet(b *testing.B)     { newBench(b).Get(b) }
func BenchmarkPut(b *testing.B)     { newBench(b).Put(b) }
func BenchmarkGetCold(b *testing.B) { newBench(b).GetCold(b) }
