package store

import (
	"context"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"

	"github.com/cmkd-io/cmkd"
)

func randomDEK() ([]byte, error) {
	k := make([]byte, DEKSize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generate dek: %w", err)
	}
	return k, nil
}

// unwrap unwraps w, one of d's wrappings, and checks the result against d's
// key check value. The caller zeroes the returned key.
func (s *Store) unwrap(ctx context.Context, d DEK, w cmkd.Wrapped) ([]byte, error) {
	k, err := s.kek.Unwrap(ctx, w)
	if err != nil {
		return nil, fmt.Errorf("unwrap dek %s: %w", d.ID, err)
	}
	if !checkKCV(k, d.KCV) {
		clear(k)
		s.log.Error("dek key check value mismatch", slog.String("tenant", d.Tenant),
			slog.String("dek", d.ID), slog.String("kid", w.KID.String()))
		return nil, fmt.Errorf("unwrap dek %s with %s: %w: key check value mismatch", d.ID, w.KID, ErrIntegrity)
	}
	return k, nil
}

// verify unwraps w remotely and checks it against kcv.
func (s *Store) verify(ctx context.Context, w cmkd.Wrapped, kcv []byte, what string) error {
	k, err := s.kek.Unwrap(ctx, w)
	if err != nil {
		return fmt.Errorf("%s unwrap: %w", what, err)
	}
	defer clear(k)
	if !checkKCV(k, kcv) {
		return fmt.Errorf("%s with %s: %w: key check value mismatch", what, w.KID, ErrIntegrity)
	}
	return nil
}

// aead returns the AES-GCM instance of the DEK whose layers are given, from
// the cache or unwrapped through Key Vault (and then cached).
func (s *Store) aead(ctx context.Context, layers []DEK) (cipher.AEAD, error) {
	d := layers[0]
	if a, ok := s.cache.get(d.ID, d.Tenant, s.now()); ok {
		return a, nil
	}
	k, err := s.unwrapDEK(ctx, layers)
	if err != nil {
		return nil, err
	}
	defer clear(k)
	return s.cache.put(d.ID, d.Tenant, k, s.now())
}

// plaintext returns a copy of layer d's share for re-wrapping, unwrapped
// through Key Vault or, when d is its DEK's only layer (the share is the
// DEK), from the cache. The caller zeroes it. A key unwrapped here is not
// cached: a bulk rewrap touches every DEK once, and caching them would fill
// memory with plaintext keys nobody reads (and evict those that are).
func (s *Store) plaintext(ctx context.Context, d DEK) ([]byte, error) {
	if k, ok := s.cache.key(d.ID, d.Tenant, s.now()); ok {
		if checkKCV(k, d.KCV) {
			return k, nil
		}
		clear(k)
	}
	return s.unwrap(ctx, d, d.Current)
}

// readDEK returns the AEAD of the tenant's DEK id for decryption.
func (s *Store) readDEK(ctx context.Context, tenant, id string) (cipher.AEAD, error) {
	if a, ok := s.cache.get(id, tenant, s.now()); ok {
		return a, nil
	}
	d, err := s.b.GetDEK(ctx, tenant, id)
	if errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnknownTenant) {
		return nil, fmt.Errorf("dek %s: %w: record names a key this tenant does not have", id, ErrIntegrity)
	}
	if err != nil {
		return nil, err
	}
	return s.aead(ctx, d)
}

// usable reports whether the rotation policy still allows writes under a.
func (s *Store) usable(a activeDEK) bool {
	return a.uses < s.cfg.DEKMaxEncryptions && s.now().Sub(a.created) < s.cfg.DEKMaxAge
}

// writeDEK returns the id and AEAD of the DEK for the tenant's next write,
// making a new DEK when there is none or the policy retired it.
func (s *Store) writeDEK(ctx context.Context, tenant string) (string, cipher.AEAD, error) {
	s.mu.Lock()
	a, ok := s.active[tenant]
	s.mu.Unlock()
	if ok && s.usable(a) {
		if k, ok := s.cache.get(a.id, tenant, s.now()); ok {
			return a.id, k, nil
		}
	}
	s.newDEK.Lock()
	defer s.newDEK.Unlock()
	d, err := s.b.ActiveDEK(ctx, tenant)
	switch {
	case err == nil && s.usable(activeDEK{id: d[0].ID, created: d[0].CreatedAt, uses: d[0].Uses}):
		k, err := s.aead(ctx, d)
		if err != nil {
			return "", nil, err
		}
		s.setActive(tenant, activeDEK{id: d[0].ID, created: d[0].CreatedAt, uses: d[0].Uses})
		return d[0].ID, k, nil
	case err != nil && !errors.Is(err, ErrNotFound):
		return "", nil, err
	}
	return s.createDEK(ctx, tenant)
}

// setActive makes a the tenant's DEK for writes; the uses counted for the
// one it replaces are written first.
func (s *Store) setActive(tenant string, a activeDEK) {
	s.mu.Lock()
	old, ok := s.active[tenant]
	s.active[tenant] = a
	s.mu.Unlock()
	if ok && old.id != a.id && old.pending > 0 {
		s.addUses(context.Background(), old.id, old.pending)
	}
}

// createDEK makes, wraps, verifies and stores a new active DEK, in every
// layer of the tenant. Each wrapping is unwrapped once remotely before any
// data depends on it. A key change begun meanwhile makes the insert fail
// (the layers are no longer the tenant's): it is made again under the new
// keys.
func (s *Store) createDEK(ctx context.Context, tenant string) (string, cipher.AEAD, error) {
	k, err := randomDEK()
	if err != nil {
		return "", nil, err
	}
	defer clear(k)
	d := DEK{ID: newID(), Tenant: tenant, Active: true, CreatedAt: s.now().UTC()}
	for attempt := 0; ; attempt++ {
		t, err := s.b.GetTenant(ctx, tenant)
		if err != nil {
			return "", nil, err
		}
		if t.Sealed() {
			return "", nil, t.SealedError()
		}
		layers, err := s.wrapLayers(ctx, t, d, k)
		if err != nil {
			return "", nil, fmt.Errorf("new dek: %w", err)
		}
		err = s.b.InsertDEK(ctx, layers)
		if err == nil {
			d = layers[0]
			break
		}
		if !errors.Is(err, ErrCASConflict) || attempt == 2 {
			return "", nil, err
		}
	}
	a, err := s.cache.put(d.ID, tenant, k, s.now())
	if err != nil {
		return "", nil, err
	}
	s.setActive(tenant, activeDEK{id: d.ID, created: d.CreatedAt})
	s.log.Info("dek created", slog.String("tenant", tenant), slog.String("dek", d.ID), slog.String("kid", d.Current.KID.String()))
	return d.ID, a, nil
}

// useFlush is how many encryptions a process counts in memory before it
// writes them to the database (AddDEKUses).
const useFlush = 256

// used counts one encryption with the tenant's DEK id, and writes the
// count to the database every useFlush uses or when it reaches the limit.
func (s *Store) used(ctx context.Context, tenant, id string) {
	s.mu.Lock()
	a, ok := s.active[tenant]
	if !ok || a.id != id {
		s.mu.Unlock()
		s.addUses(ctx, id, 1) // no longer this process's write DEK: count it now
		return
	}
	a.uses++
	a.pending++
	n := a.pending
	flush := n >= useFlush || a.uses >= s.cfg.DEKMaxEncryptions
	if flush {
		a.pending = 0
	}
	s.active[tenant] = a
	s.mu.Unlock()
	if !flush {
		return
	}
	if total, ok := s.addUses(ctx, id, n); ok {
		s.mu.Lock()
		if a, ok := s.active[tenant]; ok && a.id == id && total > a.uses {
			a.uses = total // other processes' uses count too
			s.active[tenant] = a
		}
		s.mu.Unlock()
	}
}

// addUses writes n uses of DEK id; a failure only costs the count, which
// has ample margin, so it is logged.
func (s *Store) addUses(ctx context.Context, id string, n int64) (int64, bool) {
	total, err := s.b.AddDEKUses(context.WithoutCancel(ctx), id, n)
	if err != nil {
		if !errors.Is(err, ErrNotFound) {
			s.log.Warn("count dek uses", slog.String("dek", id), slog.Any("err", err))
		}
		return 0, false
	}
	return total, true
}
