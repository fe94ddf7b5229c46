package store

import (
	"context"
	"fmt"
	"log/slog"
	"time"

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
// It returns once StateRecheck has passed since the commit: by then every
// process with the same StateRecheck (one deployment, one config) has
// asked the database again, so from the moment it returns no call through
// any Store — Get, the writes, and the envelope calls that use a DEK
// confirmed a moment ago — succeeds for the tenant. Should ctx end during
// that wait, the tenant is destroyed all the same and the error says so.
//
// What it cannot reach: another process's cache may still hold a plaintext
// DEK of the tenant until that process's CacheTTL runs out or it is told to
// Forget the tenant (a seal broadcast). No call uses it, but the key stays
// in that process's memory until then. And a
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
	return s.awaitRecheck(ctx, "destroy tenant", tenant)
}

// awaitRecheck waits out StateRecheck after a change that ends a tenant's
// use (destroy, remove): an envelope call in another process uses a DEK the
// database confirmed less than StateRecheck ago without asking again, so
// only once that window has passed since the commit does no process serve
// the tenant. The change is committed either way: an error says so.
func (s *Store) awaitRecheck(ctx context.Context, op, tenant string) error {
	if s.cfg.StateRecheck <= 0 {
		return nil
	}
	t := time.NewTimer(s.cfg.StateRecheck)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%s %s: done, but other processes may serve the tenant for up to %v more: %w", op, tenant, s.cfg.StateRecheck, ctx.Err())
	}
}
