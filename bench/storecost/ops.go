package storecost

import (
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"path/filepath"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/internal/pgtest"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
	"github.com/cmkd-io/cmkd/store/sqlite"

	_ "modernc.org/sqlite" // the driver the store uses
)

// plainTable is the baseline: the same records in a plain table of the
// same engine, with the same durability settings, read by one prepared
// statement and written by one upsert.
type plainTable interface {
	get(ctx context.Context, key string) ([]byte, error)
	put(ctx context.Context, key string, value []byte) error
	close()
}

// openSQLite opens the store's SQLite backend in dir and, in a file of
// its own, the plain table with the store's DSN pragmas: WAL, synchronous
// NORMAL, a busy timeout, IMMEDIATE transactions.
func openSQLite(ctx context.Context, dir string) (store.Backend, plainTable, func(), error) {
	b, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "cmkd.db")})
	if err != nil {
		return nil, nil, nil, err
	}
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "plain.db")+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)"+
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		b.Close()
		return nil, nil, nil, err
	}
	p := &plainSQLite{db: db}
	if _, err = db.ExecContext(ctx, `CREATE TABLE records (tenant TEXT, key TEXT, value BLOB, PRIMARY KEY (tenant, key))`); err == nil {
		p.getStmt, err = db.PrepareContext(ctx, `SELECT value FROM records WHERE tenant = ? AND key = ?`)
	}
	if err == nil {
		p.putStmt, err = db.PrepareContext(ctx, `INSERT INTO records (tenant, key, value) VALUES (?, ?, ?)
			ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value`)
	}
	if err != nil {
		p.close()
		b.Close()
		return nil, nil, nil, err
	}
	return b, p, func() {}, nil
}

// plainSQLite prepares both statements, as the store's backend prepares
// its record read and write.
type plainSQLite struct {
	db               *sql.DB
	getStmt, putStmt *sql.Stmt
}

func (p *plainSQLite) get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := p.getStmt.QueryRowContext(ctx, tenant, key).Scan(&v)
	return v, err
}

func (p *plainSQLite) put(ctx context.Context, key string, value []byte) error {
	_, err := p.putStmt.ExecContext(ctx, tenant, key, value)
	return err
}

func (p *plainSQLite) close() {
	for _, s := range []*sql.Stmt{p.getStmt, p.putStmt} {
		if s != nil {
			s.Close()
		}
	}
	p.db.Close()
}

// openPostgres opens the store's PostgreSQL backend in a schema of its
// own and the plain table in another, on the same server, so with the
// same durability (the server's synchronous_commit and fsync) and a pool
// of the same size; pgx prepares each side's statements once per
// connection. It fails with bench.ErrNoPostgres when no server answers.
func openPostgres(ctx context.Context) (store.Backend, plainTable, func(), error) {
	enc, err := bench.NewPGSchema("store")
	if err != nil {
		return nil, nil, nil, err
	}
	pl, err := bench.NewPGSchema("plain")
	if err != nil {
		enc.Drop()
		return nil, nil, nil, err
	}
	drop := func() { enc.Drop(); pl.Drop() }
	b, err := postgres.Open(ctx, postgres.Config{DSN: enc.URL, Schema: enc.Name})
	if err != nil {
		drop()
		return nil, nil, nil, err
	}
	// The backend's statement timeout is a startup parameter: the plain
	// side gets the same.
	pool, err := pgxpool.New(ctx, pgtest.With(pl.DSN, "statement_timeout",
		fmt.Sprint(postgres.DefaultStatementTimeout.Milliseconds())))
	if err == nil {
		_, err = pool.Exec(ctx, `CREATE TABLE records (tenant text COLLATE "C", key bytea, value bytea,
			PRIMARY KEY (tenant, key))`)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		b.Close()
		drop()
		return nil, nil, nil, err
	}
	return b, &plainPostgres{pool}, drop, nil
}

type plainPostgres struct{ pool *pgxpool.Pool }

func (p *plainPostgres) get(ctx context.Context, key string) ([]byte, error) {
	var v []byte
	err := p.pool.QueryRow(ctx, `SELECT value FROM records WHERE tenant = $1 AND key = $2`, tenant, []byte(key)).Scan(&v)
	return v, err
}

func (p *plainPostgres) put(ctx context.Context, key string, value []byte) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO records (tenant, key, value) VALUES ($1, $2, $3)
		ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value`, tenant, []byte(key), value)
	return err
}

func (p *plainPostgres) close() { p.pool.Close() }

func (e *env) key(i int) string { return fmt.Sprintf("record-%04d", i%e.records) }

func (e *env) encGet(ctx context.Context, i int) error {
	v, err := e.Store.Get(ctx, tenant, e.key(i))
	return check(v, err)
}

// coldGet drops the tenant's cached DEKs first, so the read unwraps.
func (e *env) coldGet(ctx context.Context, i int) error {
	e.Store.Forget(tenant)
	return e.encGet(ctx, i)
}

func (e *env) encPut(ctx context.Context, i int) error {
	return e.Store.Put(ctx, tenant, e.key(i), e.value)
}

func (e *env) plainGet(ctx context.Context, i int) error {
	v, err := e.plain.get(ctx, e.key(i))
	return check(v, err)
}

// plainPut writes a value that differs from the one it replaces, as the
// encrypted side's always does (a fresh nonce, so fresh ciphertext):
// SQLite leaves a page it would overwrite with the same bytes clean, so
// rewriting one constant value commits without writing the record's page,
// and such a baseline made an encrypted Put look three times as costly
// as it is.
func (e *env) plainPut(ctx context.Context, i int) error {
	e.seq++
	binary.BigEndian.PutUint64(e.value, e.seq)
	return e.plain.put(ctx, e.key(i), e.value)
}

func check(v []byte, err error) error {
	if err == nil && len(v) != size {
		return fmt.Errorf("read %d bytes, want %d", len(v), size)
	}
	return err
}
