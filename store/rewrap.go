package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cmkd-io/cmkd"
)

// ListDEKsNotAt lists, ordered by id after the id after, up to limit DEKs
// under key not wrapped by version: the work list of a rewrap.
func (s *Store) ListDEKsNotAt(ctx context.Context, key cmkd.KeyID, version, after string, limit int) ([]DEK, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	return s.b.ListDEKsNotAt(ctx, key, version, after, limit)
}

// VersionCounts counts the DEKs under key by the version wrapping them.
func (s *Store) VersionCounts(ctx context.Context, key cmkd.KeyID) (map[string]int, error) {
	if err := checkKey(key); err != nil {
		return nil, err
	}
	return s.b.VersionCounts(ctx, key)
}

// CompareAndSwapWrapping replaces dek id's wrapping with w only if it is
// still wrapped by expect (ErrCASConflict otherwise), keeping the old
// wrapping as the previous one. The caller has verified w (see RewrapDEK).
func (s *Store) CompareAndSwapWrapping(ctx context.Context, id string, expect cmkd.KeyID, w cmkd.Wrapped) error {
	if w.KID.Version == "" {
		return fmt.Errorf("swap wrapping of dek %s: kid %s has no version", id, w.KID)
	}
	if err := s.b.CompareAndSwapWrapping(ctx, id, expect, w); err != nil {
		return fmt.Errorf("swap wrapping of dek %s: %w", id, err)
	}
	return nil
}

// RollbackWrapping makes dek id's previous wrapping current again if it is
// still wrapped by expect; ErrNoPrevious if there is none.
func (s *Store) RollbackWrapping(ctx context.Context, id string, expect cmkd.KeyID) error {
	if err := s.b.RollbackWrapping(ctx, id, expect); err != nil {
		return fmt.Errorf("roll back wrapping of dek %s: %w", id, err)
	}
	s.log.Warn("dek wrapping rolled back", slog.String("dek", id), slog.String("kid", expect.String()))
	return nil
}

// RewrapDEK re-wraps d under target (a versioned key id, or versionless for
// the current version) and swaps the new wrapping in conditionally on d's
// current KID; it returns the new wrapping, or ErrCASConflict if another
// writer won. The plaintext comes from the cache or one remote unwrap,
// checked against d's key check value, and is wrapped locally for RSA keys:
// one Key Vault call per DEK. With verify the new wrapping is also unwrapped
// remotely and checked before the swap (the canary of a mass rewrap);
// without it, callers verify a sample.
func (s *Store) RewrapDEK(ctx context.Context, d DEK, target cmkd.KeyID, verify bool) (cmkd.Wrapped, error) {
	k, err := s.plaintext(ctx, d)
	if err != nil {
		return cmkd.Wrapped{}, &UnwrapError{DEK: d, Err: err}
	}
	w, err := s.kek.Wrap(ctx, target, k)
	clear(k)
	if err != nil {
		return cmkd.Wrapped{}, fmt.Errorf("rewrap dek %s: %w", d.ID, err)
	}
	if verify {
		if err := s.verify(ctx, w, d.KCV, "rewrap dek "+d.ID); err != nil {
			return cmkd.Wrapped{}, err
		}
	}
	if err := s.CompareAndSwapWrapping(ctx, d.ID, d.Current.KID, w); err != nil {
		return cmkd.Wrapped{}, err
	}
	return w, nil
}

// DEKsAt returns up to limit DEKs wrapped by kid (a versioned key id),
// whatever their tenants' state.
func (s *Store) DEKsAt(ctx context.Context, kid cmkd.KeyID, limit int) ([]DEK, error) {
	if kid.Version == "" {
		return nil, fmt.Errorf("deks at %s: %w: a version is required", kid, cmkd.ErrInvalidKeyID)
	}
	return s.b.DEKsAt(ctx, kid.Versionless(), kid.Version, limit)
}

// VerifyVersion proves that Key Vault still unwraps under one key version
// (kid is versioned): it unwraps one DEK wrapped by it remotely (never from
// the cache) and checks its key check value. It is the probe's sentinel: a
// key can be readable while unwrap is denied, and unwrap is what the store
// needs. ErrNotFound if no DEK uses the version.
func (s *Store) VerifyVersion(ctx context.Context, kid cmkd.KeyID) error {
	if kid.Version == "" {
		return fmt.Errorf("verify %s: %w: a version is required", kid, cmkd.ErrInvalidKeyID)
	}
	deks, err := s.b.DEKsAt(ctx, kid.Versionless(), kid.Version, 1)
	if err != nil {
		return fmt.Errorf("verify %s: %w", kid, err)
	}
	if len(deks) == 0 {
		return fmt.Errorf("verify %s: no dek: %w", kid, ErrNotFound)
	}
	k, err := s.unwrap(ctx, deks[0], deks[0].Current)
	clear(k)
	if err != nil {
		return &UnwrapError{DEK: deks[0], Err: err}
	}
	return nil
}

// QuarantineDEK sets d aside as a DEK Key Vault cannot unwrap (a corrupted
// wrapping): it stays in the store, but rewraps and probes skip it, so one
// bad DEK does not hold back its key. ev (kind dek.unreadable, filled in
// where empty) goes to the outbox in the same transaction.
func (s *Store) QuarantineDEK(ctx context.Context, d DEK, reason string, ev cmkd.StatusEvent) error {
	ev = s.event(ev, cmkd.KindDEKUnreadable, d.Tenant)
	if ev.Reason == "" {
		ev.Reason = reason
	}
	if err := s.b.QuarantineDEK(ctx, d.ID, reason, ev); err != nil {
		return fmt.Errorf("quarantine dek %s: %w", d.ID, err)
	}
	s.log.Error("dek set aside: Key Vault cannot unwrap it", slog.String("tenant", d.Tenant),
		slog.String("dek", d.ID), slog.String("kid", d.Current.KID.String()), slog.String("reason", reason))
	return nil
}

// VerifyWrapping unwraps w remotely and checks it against d's key check
// value: the canary before a mass rewrap and the sample check after it.
func (s *Store) VerifyWrapping(ctx context.Context, d DEK, w cmkd.Wrapped) error {
	return s.verify(ctx, w, d.KCV, "verify dek "+d.ID)
}

// CompleteRewrap records version as the key version of key's tenants and
// writes evs to the outbox in the same transaction, only once no DEK under
// key is wrapped by another version (ErrRewrapIncomplete).
func (s *Store) CompleteRewrap(ctx context.Context, key cmkd.KeyID, version string, evs ...cmkd.StatusEvent) error {
	if err := checkKey(key); err != nil {
		return err
	}
	for i := range evs {
		evs[i] = s.event(evs[i], cmkd.KindRewrapCompleted, evs[i].Tenant)
	}
	if err := s.b.CompleteRewrap(ctx, key, version, evs); err != nil {
		if !errors.Is(err, ErrRewrapIncomplete) {
			err = fmt.Errorf("complete rewrap of %s: %w", key, err)
		}
		return err
	}
	return nil
}
