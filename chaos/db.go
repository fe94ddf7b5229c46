package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"github.com/cmkd-io/cmkd"
)

// outboxRow is a status event as the outbox recorded it.
type outboxRow struct {
	Seq   int64
	Event cmkd.StatusEvent
	Sent  bool
}

// query runs q on the run's database, outside cmkd's API (the outbox's
// sent rows, which no API hands out), and scans each row.
func (c *cluster) query(ctx context.Context, q string, scan func(row interface{ Scan(...any) error }) error, args ...any) error {
	db, err := c.readDB()
	if err != nil {
		return err
	}
	rs, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	for rs.Next() {
		if err := scan(rs); err != nil {
			return err
		}
	}
	return rs.Err()
}

// readDB is the harness's own pool on the run's database, opened once; it
// reconnects after a PostgreSQL restart by itself.
func (c *cluster) readDB() (*sql.DB, error) {
	c.dbMu.Lock()
	defer c.dbMu.Unlock()
	if c.db != nil {
		return c.db, nil
	}
	driver, dsn := "sqlite", "file:"+c.sqlitePath+"?mode=ro&_pragma=busy_timeout(5000)"
	if c.pg != nil {
		driver, dsn = "pgx", c.pg.URL
	}
	db, err := sql.Open(driver, dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(2)
	c.db = db
	return db, nil
}

func (c *cluster) table(name string) string {
	if c.pg != nil {
		return "cmkd." + name
	}
	return name
}

// unsent counts the outbox's unsent events.
func (c *cluster) unsent(ctx context.Context) (int, error) {
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	n := 0
	err := c.query(qctx, "SELECT count(*) FROM "+c.table("outbox")+" WHERE sent_at IS NULL",
		func(row interface{ Scan(...any) error }) error { return row.Scan(&n) })
	return n, err
}

// outbox reads every status event the outbox recorded, in write order.
func (c *cluster) outbox(ctx context.Context) ([]outboxRow, error) {
	timeCol := "time"
	if c.pg != nil {
		timeCol = "event_time"
	}
	var out []outboxRow
	err := c.query(ctx, fmt.Sprintf("SELECT seq, id, tenant, kind, %s, data, sent_at IS NOT NULL FROM %s ORDER BY seq", timeCol, c.table("outbox")),
		func(row interface{ Scan(...any) error }) error {
			var r outboxRow
			var at *int64
			var data string
			if err := row.Scan(&r.Seq, &r.Event.ID, &r.Event.Tenant, &r.Event.Kind, &at, &data, &r.Sent); err != nil {
				return err
			}
			if at != nil && *at != 0 {
				r.Event.Time = time.Unix(0, *at)
			}
			if err := r.Event.UnmarshalData([]byte(data)); err != nil {
				return fmt.Errorf("outbox row %d: %w", r.Seq, err)
			}
			out = append(out, r)
			return nil
		})
	return out, err
}
