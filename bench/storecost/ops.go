package storecost

import (
	"context"
	"database/sql"
	"fmt"

	_ "modernc.org/sqlite" // the driver the store uses
)

// open makes the plain table with the store's DSN pragmas: WAL, synchronous
// NORMAL, a busy timeout, IMMEDIATE transactions.
func (e *env) open(ctx context.Context, path string) error {
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)&_pragma=busy_timeout(5000)"+
		"&_pragma=foreign_keys(1)&_pragma=synchronous(NORMAL)&_txlock=immediate")
	if err != nil {
		return err
	}
	e.plain = db
	if _, err := db.ExecContext(ctx, `CREATE TABLE records (tenant TEXT, key TEXT, value BLOB, PRIMARY KEY (tenant, key))`); err != nil {
		return err
	}
	e.get, err = db.PrepareContext(ctx, `SELECT value FROM records WHERE tenant = ? AND key = ?`)
	return err
}

func key(i int) string { return fmt.Sprintf("record-%04d", i%records) }

func (e *env) encGet(ctx context.Context, i int) error {
	v, err := e.Store.Get(ctx, tenant, key(i))
	return check(v, err)
}

// coldGet drops the tenant's cached DEKs first, so the read unwraps.
func (e *env) coldGet(ctx context.Context, i int) error {
	e.Store.Forget(tenant)
	return e.encGet(ctx, i)
}

func (e *env) encPut(ctx context.Context, i int) error {
	return e.Store.Put(ctx, tenant, key(i), e.value)
}

func (e *env) plainGet(ctx context.Context, i int) error {
	var v []byte
	err := e.get.QueryRowContext(ctx, tenant, key(i)).Scan(&v)
	return check(v, err)
}

func (e *env) plainPut(ctx context.Context, i int) error {
	_, err := e.plain.ExecContext(ctx, `INSERT INTO records (tenant, key, value) VALUES (?, ?, ?)
		ON CONFLICT (tenant, key) DO UPDATE SET value = excluded.value`, tenant, key(i), e.value)
	return err
}

func check(v []byte, err error) error {
	if err == nil && len(v) != size {
		return fmt.Errorf("read %d bytes, want %d", len(v), size)
	}
	return err
}
