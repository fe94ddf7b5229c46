package schedule

import (
	"log/slog"

	"github.com/cmkd-io/cmkd/bench"
)

// Log messages the scenarios time. The parts have no hooks for these
// instants, but log them the moment they happen, from the worker's own
// goroutines.
const (
	// msgRewrapCompleted is the Reconciler's, once a rewrap's last swap and
	// the tenants' new version are committed; attrs key and rewrapped.
	msgRewrapCompleted = "rewrap completed"
	// msgRewrapFailed is the Reconciler's, when a rewrap stops short.
	msgRewrapFailed = "rewrap failed"
	// msgTenantSealed is the store's, once a tenant's seal is committed;
	// attr tenant.
	msgTenantSealed = "tenant sealed"
)

// logged is one record of a watched message.
type logged = bench.Logged

// newTap hands the records of msgs (Info and above, their level) to on.
func newTap(next *slog.Logger, on func(logged), msgs ...string) *slog.Logger {
	return bench.LogTap(next, slog.LevelInfo, on, msgs...)
}
