package chaos

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
)

// outboxRow is a status event as the outbox recorded it.
type outboxRow struct {
	Seq   int64
	Event cmkd.StatusEvent
	Sent  bool
}

// rows is what *sql.Rows and pgx.Rows share.
type rows interface {
	Next() bool
	Scan(...any) error
	Err() error
}

// query runs q on a connection of its own to the run's database (outside
// cmkd's API: the outbox's sent rows, which no API hands out) and scans
// each row.
func (c *cluster) query(ctx context.Context, q string, scan func(row interface{ Scan(...any) error }) error, args ...any) error {
	if c.pg != nil {
		conn, err := pgx.Connect(ctx, c.pg.URL)
		if err != nil {
			return err
		}
		defer conn.Close(context.WithoutCancel(ctx))
		rs, err := conn.Query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rs.Close()
		return scanAll(rs, scan)
	}
	db, err := sql.Open("sqlite", "file:"+c.sqlitePath+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		return err
	}
	defer db.Close()
	rs, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rs.Close()
	return scanAll(rs, scan)
}

func scanAll(rs rows, scan func(row interface{ Scan(...any) error }) error) error {
	for rs.Next() {
		if err := scan(rs); err != nil {
			return err
		}
	}
	return rs.Err()
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
