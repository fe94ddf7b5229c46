package store

import (
	"context"
	"fmt"
	"log/slog"
)

// AddTenant registers a tenant whose KEK is the versionless key keyURL and
// makes its first DEK, wrapped under the key's current version, so that a
// key that cannot wrap is refused now rather than at the first write. If
// that fails the tenant is removed again.
func (s *Store) AddTenant(ctx context.Context, id, keyURL string) (Tenant, error) {
	if err := s.check(); err != nil {
		return Tenant{}, err
	}
	if err := ValidateTenantID(id); err != nil {
		return Tenant{}, err
	}
	u, err := ParseKeyURL(keyURL)
	if err != nil {
		return Tenant{}, err
	}
	t := Tenant{ID: id, KeyURL: u, State: StateActive, CreatedAt: s.now().UTC()}
	if err := s.b.AddTenant(ctx, t); err != nil {
		return Tenant{}, wrapErr("add tenant", id, err)
	}
	_, _, err = s.writeDEK(ctx, id)
	if err != nil {
		if rerr := s.b.RemoveTenant(context.WithoutCancel(ctx), id, true); rerr != nil {
			err = fmt.Errorf("%w (and removing it again: %v)", err, rerr)
		}
		return Tenant{}, fmt.Errorf("add tenant %s: first dek under %s: %w", id, u, err)
	}
	s.log.Info("tenant added", slog.String("tenant", id), slog.String("key_url", u))
	return t, nil
}

// Tenant reads a tenant, sealed or not.
func (s *Store) Tenant(ctx context.Context, id string) (Tenant, error) {
	if err := ValidateTenantID(id); err != nil {
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
	return s.b.ListTenants(ctx, "")
}

// TenantsByKey lists the tenants whose KEK is keyURL.
func (s *Store) TenantsByKey(ctx context.Context, keyURL string) ([]Tenant, error) {
	u, err := ParseKeyURL(keyURL)
	if err != nil {
		return nil, err
	}
	return s.b.ListTenants(ctx, u)
}

// RemoveTenant deletes a tenant and its DEKs. It refuses with ErrNotEmpty
// while records exist unless force, which deletes them too.
func (s *Store) RemoveTenant(ctx context.Context, id string, force bool) error {
	if err := ValidateTenantID(id); err != nil {
		return err
	}
	if err := s.b.RemoveTenant(ctx, id, force); err != nil {
		return wrapErr("remove tenant", id, err)
	}
	s.wipe(id)
	s.log.Info("tenant removed", slog.String("tenant", id), slog.Bool("force", force))
	return nil
}

// Seal persists that tenant is sealed for reason and writes ev (kind
// "sealed", filled in where empty) to the outbox in the same transaction,
// then wipes the tenant's cached DEKs. Sealing a sealed tenant changes
// nothing and writes no event. No data is deleted or rewritten.
func (s *Store) Seal(ctx context.Context, tenant, reason string, ev StatusEvent) error {
	if err := ValidateTenantID(tenant); err != nil {
		return err
	}
	changed, err := s.b.SetTenantState(ctx, tenant, StateSealed, reason, s.now().UTC(), s.sealEvent(ev, tenant, reason))
	// Wipe even on error: when in doubt, fail closed in this process.
	s.wipe(tenant)
	if err != nil {
		return wrapErr("seal", tenant, err)
	}
	if changed {
		s.logSealed(reason, tenant)
	}
	return nil
}

// sealEvent fills in a sealed event for tenant, its reason included.
func (s *Store) sealEvent(ev StatusEvent, tenant, reason string) StatusEvent {
	ev = s.event(ev, KindSealed, tenant)
	if _, ok := ev.Data["reason"]; !ok {
		ev.Data["reason"] = reason
	}
	return ev
}

func (s *Store) logSealed(reason string, tenants ...string) {
	for _, t := range tenants {
		s.log.Warn("tenant sealed", slog.String("tenant", t), slog.String("reason", reason))
	}
}

// SealTenants seals many tenants with one reason in one transaction — a
// disabled key seals all its tenants at once, and one commit per tenant
// kept the last of a thousand tenants readable for seconds. evs holds one
// event per tenant (ev.Tenant names it). Caches are wiped for every tenant
// named, changed or not, and even on error. It returns the tenants it
// sealed; those already sealed are not.
func (s *Store) SealTenants(ctx context.Context, reason string, evs []StatusEvent) ([]string, error) {
	for i := range evs {
		if err := ValidateTenantID(evs[i].Tenant); err != nil {
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
	s.logSealed(reason, changed...)
	return changed, nil
}

// Unseal makes a sealed tenant active again, only after one of its DEKs
// unwraps in Key Vault and matches its key check value (or, with no DEK yet,
// after a fresh key wraps and unwraps). ev (kind "unsealed") goes to the
// outbox in the same transaction as the state change.
func (s *Store) Unseal(ctx context.Context, tenant string, ev StatusEvent) error {
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
	changed, err := s.b.SetTenantState(ctx, tenant, StateActive, "", s.now().UTC(), s.event(ev, KindUnsealed, tenant))
	if err != nil {
		return wrapErr("unseal", tenant, err)
	}
	if changed {
		s.log.Info("tenant unsealed", slog.String("tenant", tenant))
	}
	return nil
}

// probe proves that Key Vault unwraps for t again.
func (s *Store) probe(ctx context.Context, t Tenant) error {
	deks, err := s.b.TenantDEKs(ctx, t.ID, 1)
	if err != nil {
		return err
	}
	if len(deks) == 1 {
		k, err := s.unwrap(ctx, deks[0], deks[0].Current)
		clear(k)
		return err
	}
	k, err := randomDEK()
	if err != nil {
		return err
	}
	defer clear(k)
	w, err := s.kek.Wrap(ctx, t.KeyURL, k)
	if err != nil {
		return fmt.Errorf("probe wrap: %w", err)
	}
	return s.verify(ctx, w, KeyCheckValue(k), "probe")
}
