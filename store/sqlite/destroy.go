package sqlite

import (
	"context"
	"database/sql"
	"errors"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// DestroyTenant implements store.Backend: the tenant's records, wrapped
// DEKs and row go, with ev, in one transaction.
func (b *Backend) DestroyTenant(ctx context.Context, id string, ev cmkd.StatusEvent) error {
	return b.tx(ctx, func(tx *sql.Tx) error {
		if _, err := tenantState(ctx, tx, id); err != nil && !errors.Is(err, store.ErrSealed) {
			return err
		}
		if err := deleteTenant(ctx, tx, id); err != nil {
			return err
		}
		return appendOutbox(ctx, tx, []cmkd.StatusEvent{ev})
	})
}
