package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/cmkd-io/cmkd"
)

// Put encrypts value under the tenant's active DEK and stores it under key,
// replacing any previous value.
func (s *Store) Put(ctx context.Context, tenant, key string, value []byte) error {
	if err := s.checkArgs(tenant, key); err != nil {
		return err
	}
	if len(value) > s.cfg.MaxRecordSize {
		return fmt.Errorf("put %s/%s: %w: %d bytes, limit %d", tenant, key, ErrTooLarge, len(value), s.cfg.MaxRecordSize)
	}
	err := s.put(ctx, tenant, key, value)
	if errors.Is(err, ErrNotFound) {
		// The DEK this process held for writes is gone: another process
		// removed the tenant (and maybe added it again). Drop what is
		// cached and try once more with what the database holds now.
		s.wipe(tenant)
		err = s.put(ctx, tenant, key, value)
	}
	if err != nil {
		return fmt.Errorf("put %s/%s: %w", tenant, key, err)
	}
	return nil
}

func (s *Store) put(ctx context.Context, tenant, key string, value []byte) error {
	id, k, err := s.writeDEK(ctx, tenant)
	if err != nil {
		s.forget(tenant, err)
		return err
	}
	blob, err := sealRecord(k, tenant, key, id, value)
	if err != nil {
		return err
	}
	if err := s.b.PutRecord(ctx, tenant, key, id, blob); err != nil {
		s.forget(tenant, err)
		return err
	}
	s.used(ctx, tenant, id)
	return nil
}

// Get reads and decrypts the record under key. A sealed tenant fails with
// ErrSealed before any Key Vault call; a ciphertext that does not belong to
// this tenant and key fails with ErrIntegrity.
func (s *Store) Get(ctx context.Context, tenant, key string) ([]byte, error) {
	if err := s.checkArgs(tenant, key); err != nil {
		return nil, err
	}
	blob, err := s.b.GetRecord(ctx, tenant, key)
	if err != nil {
		s.forget(tenant, err)
		return nil, fmt.Errorf("get %s/%s: %w", tenant, key, err)
	}
	p, err := parseRecord(blob)
	if err != nil {
		return nil, fmt.Errorf("get %s/%s: %w: %w", tenant, key, ErrIntegrity, err)
	}
	k, err := s.readDEK(ctx, tenant, p.dekID)
	if err != nil {
		s.forget(tenant, err)
		return nil, fmt.Errorf("get %s/%s: %w", tenant, key, err)
	}
	return openRecord(k, tenant, key, p) // blob is ours: GetRecord's contract
}

// Delete removes the record under key; ErrNotFound if there was none.
func (s *Store) Delete(ctx context.Context, tenant, key string) error {
	if err := s.checkArgs(tenant, key); err != nil {
		return err
	}
	if err := s.b.DeleteRecord(ctx, tenant, key); err != nil {
		s.forget(tenant, err)
		return fmt.Errorf("delete %s/%s: %w", tenant, key, err)
	}
	return nil
}

// List returns, in order, up to limit record keys of tenant after after.
func (s *Store) List(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := cmkd.ValidateTenantID(tenant); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 1000
	}
	keys, err := s.b.ListRecords(ctx, tenant, after, limit)
	if err != nil {
		s.forget(tenant, err)
		return nil, fmt.Errorf("list %s: %w", tenant, err)
	}
	return keys, nil
}

func (s *Store) checkArgs(tenant, key string) error {
	if err := s.check(); err != nil {
		return err
	}
	if err := cmkd.ValidateTenantID(tenant); err != nil {
		return err
	}
	return validateRecordKey(key)
}
