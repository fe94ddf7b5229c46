package postgres

import (
	"context"
	"errors"
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
		var one int
		err := tx.QueryRow(ctx, `SELECT 1 FROM tenants WHERE id = $1 FOR UPDATE`, id).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return tenantNotFound(id)
		}
		if err != nil {
			return fmt.Errorf("lock tenant: %w", err)
		}
		for _, q := range []string{
			`DELETE FROM records WHERE tenant = $1`,
			`DELETE FROM dek_wrappings WHERE tenant = $1`,
			`DELETE FROM deks WHERE tenant = $1`,
			`DELETE FROM tenants WHERE id = $1`,
		} {
			if _, err := tx.Exec(ctx, q, id); err != nil {
				return fmt.Errorf("destroy tenant: %w", err)
			}
		}
		if _, err := tx.Exec(ctx, appendOutboxSQL, o...); err != nil {
			return fmt.Errorf("destroy tenant: write event: %w", err)
		}
		return nil
	})
}
