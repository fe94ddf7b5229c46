package store

import (
	"context"
	"fmt"
	"log/slog"
	"slices"

	"github.com/cmkd-io/cmkd"
)

// AddTenant registers a tenant whose customer key is key (versionless; zero
// for the platform layer alone) under the store's platform key, and makes
// its first DEK, wrapped in every layer under the keys' current versions,
// so that a key that cannot wrap is refused now rather than at the first
// write. If that fails the tenant is removed again.
func (s *Store) AddTenant(ctx context.Context, id string, key cmkd.KeyID) (Tenant, error) {
	if err := s.check(); err != nil {
		return Tenant{}, err
	}
	if err := cmkd.ValidateTenantID(id); err != nil {
		return Tenant{}, err
	}
	if err := s.checkCustomerKey(key); err != nil {
		return Tenant{}, wrapErr("add tenant", id, err)
	}
	t := Tenant{ID: id, Key: key, PlatformKey: s.cfg.PlatformKey, State: StateActive, CreatedAt: s.now().UTC()}
	if err := s.b.AddTenant(ctx, t); err != nil {
		return Tenant{}, wrapErr("add tenant", id, err)
	}
	_, _, err := s.writeDEK(ctx, id)
	if err != nil {
		if rerr := s.b.RemoveTenant(context.WithoutCancel(ctx), id, true); rerr != nil {
			err = fmt.Errorf("%w (and removing it again: %v)", err, rerr)
		}
		return Tenant{}, fmt.Errorf("add tenant %s: first dek: %w", id, err)
	}
	s.log.Info("tenant added", slog.String("tenant", id), slog.String("key", key.String()),
		slog.String("platform_key", t.PlatformKey.String()))
	return t, nil
}

// checkCustomerKey checks a tenant's customer key: a versionless key id,
// not the platform key, or zero when there is a platform layer.
func (s *Store) checkCustomerKey(key cmkd.KeyID) error {
	switch {
	case key.IsZero() && s.cfg.PlatformKey.IsZero():
		return fmt.Errorf("%w: %w: no customer key given and no platform key configured", cmkd.ErrInvalidKeyID, ErrNoKey)
	case key.IsZero():
		return nil
	case key.Versionless() == s.cfg.PlatformKey:
		return fmt.Errorf("%w %s: it is the platform key; a customer key must be the customer's own", cmkd.ErrInvalidKeyID, key)
	}
	return checkKey(key)
}

// Tenant reads a tenant, sealed or not.
func (s *Store) Tenant(ctx context.Context, id string) (Tenant, error) {
	if err := cmkd.ValidateTenantID(id); err != nil {
		return Tenant{}, err
	}
	t, err := s.b.GetTenant(ctx, id)
	if err != nil {
		return Tenant{}, wrapErr("get tenant", id, err)
	}
	return t, nil
}

// Tenants lists all tenants.
func (s *Store) Tenants(ctx context.Context) ([]Tenant, error) {
	return s.b.ListTenants(ctx, cmkd.KeyID{})
}

// TenantsByKey lists the tenants whose KEK is key (any version of it).
func (s *Store) TenantsByKey(ctx context.Context, key cmkd.KeyID) ([]Tenant, error) {
	if key.IsZero() {
		return nil, fmt.Errorf("tenants by key: %w: no key given", cmkd.ErrInvalidKeyID)
	}
	return s.b.ListTenants(ctx, key.Versionless())
}

// RemoveTenant deletes a tenant and its DEKs. It refuses with ErrNotEmpty
// while records exist unless force, which deletes them too.
func (s *Store) RemoveTenant(ctx context.Context, id string, force bool) error {
	if err := cmkd.ValidateTenantID(id); err != nil {
		return err
	}
	if err := s.b.RemoveTenant(ctx, id, force); err != nil {
		return wrapErr("remove tenant", id, err)
	}
	s.wipe(id)
	s.log.Info("tenant removed", slog.String("tenant", id), slog.Bool("force", force))
	return s.awaitRecheck(ctx, "remove tenant", id)
}

// Seal persists that tenant is sealed for reason and writes ev (kind
// "sealed", filled in where empty) to the outbox in the same transaction,
// then wipes the tenant's cached DEKs. Sealing a sealed tenant changes
// nothing and writes no event. No data is deleted or rewritten.
func (s *Store) Seal(ctx context.Context, tenant, reason string, ev cmkd.StatusEvent) error {
	if err := cmkd.ValidateTenantID(tenant); err != nil {
		return err
	}
	changed, err := s.b.SetTenantState(ctx, tenant, StateSealed, reason, s.now().UTC(), s.sealEvent(ev, tenant, reason))
	// Wipe even on error: when in doubt, fail closed in this process.
	s.wipe(tenant)
	if err != nil {
		return wrapErr("seal", tenant, err)
	}
	if changed {
		s.logState("tenant sealed", ev)
	}
	return nil
}

// sealEvent fills in a sealed event for tenant, its reason included.
func (s *Store) sealEvent(ev cmkd.StatusEvent, tenant, reason string) cmkd.StatusEvent {
	ev = s.event(ev, cmkd.KindSealed, tenant)
	if ev.Reason == "" {
		ev.Reason = reason
	}
	return ev
}

// logState logs a tenant's change of state: the one log line for it.
func (s *Store) logState(msg string, ev cmkd.StatusEvent) {
	level, attrs := slog.LevelInfo, []slog.Attr{slog.String("tenant", ev.Tenant), slog.String("key", ev.Key.URL())}
	if ev.Kind == cmkd.KindSealed {
		level, attrs = slog.LevelWarn, append(attrs, slog.String("reason", ev.Reason))
	}
	if ev.Cause != "" {
		attrs = append(attrs, slog.String("cause", ev.Cause))
	}
	s.log.LogAttrs(context.Background(), level, msg, attrs...)
}

// SealTenants seals many tenants with one reason in one transaction — a
// disabled key seals all its tenants at once, and one commit per tenant
// kept the last of a thousand tenants readable for seconds. evs holds one
// event per tenant (ev.Tenant names it). Caches are wiped for every tenant
// named, changed or not, and even on error. It returns the tenants it
// sealed; those already sealed are not.
func (s *Store) SealTenants(ctx context.Context, reason string, evs []cmkd.StatusEvent) ([]string, error) {
	for i := range evs {
		if err := cmkd.ValidateTenantID(evs[i].Tenant); err != nil {
			return nil, err
		}
		evs[i] = s.sealEvent(evs[i], evs[i].Tenant, reason)
	}
	changed, err := s.b.SealTenants(ctx, reason, s.now().UTC(), evs)
	for _, ev := range evs {
		s.wipe(ev.Tenant)
	}
	if err != nil {
		return nil, fmt.Errorf("seal %d tenants: %w", len(evs), err)
	}
	for _, ev := range evs {
		if slices.Contains(changed, ev.Tenant) {
			s.logState("tenant sealed", ev)
		}
	}
	return changed, nil
}

// Unseal makes a sealed tenant active again, only after one of its DEKs
// unwraps in Key Vault and matches its key check value (or, with no DEK yet,
// after a fresh key wraps and unwraps). ev (kind "unsealed") goes to the
// outbox in the same transaction as the state change.
func (s *Store) Unseal(ctx context.Context, tenant string, ev cmkd.StatusEvent) error {
	t, err := s.Tenant(ctx, tenant)
	if err != nil {
		return err
	}
	if !t.Sealed() {
		return nil
	}
	if err := s.probe(ctx, t); err != nil {
		return wrapErr("unseal", tenant, err)
	}
	ev = s.event(ev, cmkd.KindUnsealed, tenant)
	changed, err := s.b.SetTenantState(ctx, tenant, StateActive, "", s.now().UTC(), ev)
	if err != nil {
		return wrapErr("unseal", tenant, err)
	}
	if changed {
		s.logState("tenant unsealed", ev)
	}
	return nil
}

// probe proves that Key Vault unwraps for t again, in every layer.
func (s *Store) probe(ctx context.Context, t Tenant) error {
	deks, err := s.b.TenantDEKs(ctx, t.ID, "", 1)
	if err != nil {
		return err
	}
	if len(deks) > 0 {
		k, err := s.unwrapDEK(ctx, deks)
		clear(k)
		return err
	}
	k, err := randomDEK()
	if err != nil {
		return err
	}
	defer clear(k)
	_, err = s.wrapLayers(ctx, t, DEK{ID: "probe", Tenant: t.ID}, k)
	return err
}
