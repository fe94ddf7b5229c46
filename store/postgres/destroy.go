package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/cmkd-io/cmkd"
)

// DestroyTenant implements store.Backend. Like RemoveTenant it locks the
// tenant's row first, exclusively: writes in flight (which share-lock it)
// finish before the deletes, and those that start after wait and then
// find no tenant, so no record or DEK is written after it is gone.
func (b *Backend) DestroyTenant(ctx context.Context, id string, ev cmkd.StatusEvent) error {
	o, err := outboxArgs([]cmkd.StatusEvent{ev})
	if err != nil {
		return err
	}
	return pgx.BeginFunc(ctx, b.pool, func(tx pgx.Tx) error {
		if err := lockTenantForRemoval(ctx, tx, id); err != nil {
			return err
		}
		if err := deleteTenant(ctx, tx, id); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, appendOutboxSQL, o...); err != nil {
			return fmt.Errorf("destroy tenant: write event: %w", err)
		}
		return nil
	})
}
