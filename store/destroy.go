package store

import (
	"context"
	"log/slog"

	"github.com/cmkd-io/cmkd"
)

// DestroyTenant crypto-shreds a tenant: in one transaction it deletes
// every DEK of the tenant (in every layer), every record and the tenant
// itself, and writes ev (kind "tenant.destroyed", filled in where empty) to
// the outbox; then it wipes the tenant's DEKs cached in this process. Every
// ciphertext ever made for the tenant — its records and the envelope
// ciphertexts applications keep elsewhere — names a DEK that no longer
// exists, so none can be decrypted again: Decrypt fails with
// ErrUnknownTenant, and, should a tenant of the same id be added later,
// with ErrIntegrity (the new tenant gets new DEKs). It works whatever the
// tenant's state, sealed included; ErrUnknownTenant if there is none.
//
// What it cannot reach: another process's cache may still hold a plaintext
// DEK of the tenant until that process's CacheTTL runs out or it is told to
// Forget the tenant (a seal broadcast). Calls through a Store do not use it
// — Get, Decrypt and the writes check the database first and find no
// tenant — but the key stays in that process's memory until then. And a
// database backup, or storage not yet reclaimed (PostgreSQL's dead tuples
// and WAL, SQLite's free pages and WAL), may still hold the wrapped DEKs;
// those unwrap only with the tenant's Key Vault keys, so against backups
// the shredding is complete once the customer key is destroyed too.
func (s *Store) DestroyTenant(ctx context.Context, tenant string, ev cmkd.StatusEvent) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := cmkd.ValidateTenantID(tenant); err != nil {
		return err
	}
	t, err := s.b.GetTenant(ctx, tenant)
	if err != nil {
		return wrapErr("destroy tenant", tenant, err)
	}
	ev = s.event(ev, cmkd.KindTenantDestroyed, tenant)
	if ev.Key.IsZero() {
		ev.Key, ev.Layer = t.Key, LayerCustomer
		if t.Key.IsZero() {
			ev.Key, ev.Layer = t.PlatformKey, LayerPlatform
		}
	}
	err = s.b.DestroyTenant(ctx, tenant, ev)
	// Wipe even on error: when in doubt, fail closed in this process.
	s.wipe(tenant)
	if err != nil {
		return wrapErr("destroy tenant", tenant, err)
	}
	s.log.Warn("tenant destroyed: its data can no longer be decrypted", slog.String("tenant", tenant),
		slog.String("key", t.Key.String()), slog.String("platform_key", t.PlatformKey.String()))
	return nil
}
