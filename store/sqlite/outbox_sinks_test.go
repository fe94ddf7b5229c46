package sqlite

import (
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd/store/storetest"
)

// A file written before sinks had state of their own migrates without
// publishing anything again: what was sent stays sent for NATS, what was
// not is still NATS's to send, and a new sink starts after both.
func TestMigrateKeepsOutboxStateAsNATSSink(t *testing.T) {
	b := openFromVersion(t, 7,
		`INSERT INTO outbox (id, tenant, kind, time, data, sent_at) VALUES ('sent', 'a', 'key.expired', 1, '{}', 5)`,
		`INSERT INTO outbox (id, tenant, kind, time, data) VALUES ('unsent', 'a', 'key.expired', 2, '{}')`,
	)
	storetest.MigratedOutbox(t, b)
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
