package chaos

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// startTestPostgres starts a private server for the test and stops it at
// the end; it skips the test only where no PostgreSQL binaries exist.
func startTestPostgres(t *testing.T, ctx context.Context) *Postgres {
	t.Helper()
	pg, err := StartPostgres(ctx, filepath.Join(t.TempDir(), "pgdata"))
	if errors.Is(err, ErrNoPostgres) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := pg.Close(); err != nil {
			t.Error(err)
		}
	})
	return pg
}

func TestPostgresRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pg := startTestPostgres(t, ctx)
	if !pg.Running(ctx) {
		t.Fatal("Running is false right after StartPostgres")
	}

	conn, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE TABLE t (v text PRIMARY KEY)`); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `INSERT INTO t VALUES ('committed')`); err != nil {
		t.Fatal(err)
	}

	open, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close(ctx)
	tx, err := open.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO t VALUES ('uncommitted')`); err != nil {
		t.Fatal(err)
	}

	if err := pg.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if !pg.Running(ctx) {
		t.Fatal("Running is false after Restart")
	}

	// The connection with the open transaction was cut.
	if _, err := tx.Exec(ctx, `SELECT 1`); err == nil {
		t.Error("the connection open across the restart still answers queries")
	}

	after, err := pgx.Connect(ctx, pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer after.Close(ctx)
	rows, err := after.Query(ctx, `SELECT v FROM t ORDER BY v`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "committed" {
		t.Errorf("rows after the restart = %q, want only the committed one", got)
	}
}

func TestPostgresStopStart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pg := startTestPostgres(t, ctx)

	if err := pg.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if pg.Running(ctx) {
		t.Fatal("Running is true after Stop")
	}
	if err := pg.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := pg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if !pg.Running(ctx) {
		t.Fatal("Running is false after Start")
	}
}
