package sqlite

import (
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// A file written before sinks had state of their own migrates without
// publishing anything again: what was sent stays sent for NATS, what was
// not is still NATS's to send, and a new sink starts after both.
func TestMigrateKeepsOutboxStateAsNATSSink(t *testing.T) {
	b := openFromVersion(t, 7,
		`INSERT INTO outbox (id, tenant, kind, time, data, sent_at) VALUES ('sent', 'a', 'key.expired', 1, '{}', 5)`,
		`INSERT INTO outbox (id, tenant, kind, time, data) VALUES ('unsent', 'a', 'key.expired', 2, '{}')`,
	)
	ctx, now := t.Context(), time.Now()
	if n, err := b.OutboxPending(ctx, store.NATSSink); err != nil || n != 1 {
		t.Fatalf("pending for nats after migration: %d, %v; want 1", n, err)
	}
	es, err := b.ClaimOutbox(ctx, "r1", 10, now, time.Minute)
	if err != nil || len(es) != 1 || es[0].Event.ID != "unsent" {
		t.Fatalf("nats claimed %+v, %v; want only the unsent entry", es, err)
	}
	if es, err := b.ClaimOutboxFor(ctx, "eventgrid", "r1", 10, now, time.Minute); err != nil || len(es) != 0 {
		t.Fatalf("a new sink claimed %+v, %v; want nothing written before it", es, err)
	}
	if err := b.AppendOutbox(ctx, []cmkd.StatusEvent{{ID: "new", Kind: cmkd.KindKeyExpired, Tenant: "a"}}); err != nil {
		t.Fatal(err)
	}
	if es, err := b.ClaimOutboxFor(ctx, "eventgrid", "r1", 10, now, time.Minute); err != nil || len(es) != 1 || es[0].Event.ID != "new" {
		t.Fatalf("the sink claimed %+v, %v; want the new entry", es, err)
	}
}

// Claims of a sink search the partial indexes of unsent delivery rows,
// not every row the sink was ever sent.
func TestSinkClaimUsesUnsentIndexes(t *testing.T) {
	b := openFromVersion(t, SchemaVersion)
	p := queryPlan(t, b, claimForSQL, "h", 2, 1, 10, "s")
	for _, ix := range []string{"outbox_delivery_unsent", "outbox_delivery_tenant"} {
		if !strings.Contains(p, ix) {
			t.Errorf("the sink claim does not search %s: %s", ix, p)
		}
	}
}
