package store

import (
	"context"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cmkd-io/cmkd"
)

// Envelope ciphertexts are what Encrypt returns to applications that keep
// their data themselves. They are self-describing, so that rotation never
// requires rewriting them (only the DEKs are rewrapped):
//
//	0x01 (format version) | 1 byte len(DEK id) | DEK id | 12-byte nonce | AES-256-GCM sealed bytes
//
// The additional data binds one to its tenant, its DEK id and the caller's
// additional data, length-prefixed under the label envelopeLabel, which
// differs from records' label: a record blob and an envelope ciphertext can
// never be swapped for one another, nor can one tenant's ciphertext be
// opened as another's.
const (
	envelopeVersion = 1
	envelopeLabel   = "cmkd/envelope/v1"
)

// envelopeAD is the additional data of an envelope ciphertext.
func envelopeAD(tenant, dekID string, aad []byte) []byte {
	ad := make([]byte, 0, len(envelopeLabel)+12+len(tenant)+len(dekID)+len(aad))
	ad = append(ad, envelopeLabel...)
	for _, p := range [][]byte{[]byte(tenant), []byte(dekID), aad} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(p))) // #nosec G115 -- bounded by MaxRecordSize and id limits, far below 4 GiB
		ad = append(ad, p...)
	}
	return ad
}

// Encrypt encrypts plaintext for tenant under its active DEK (chosen and
// counted as Put does) and returns a self-describing ciphertext the caller
// keeps. aad, which may be empty, must be given again to Decrypt: it binds
// the ciphertext to the caller's context (a row id, a file name). A sealed
// tenant fails with ErrSealed, a missing one with ErrUnknownTenant; a
// plaintext above Config.MaxRecordSize with ErrTooLarge.
func (s *Store) Encrypt(ctx context.Context, tenant string, plaintext, aad []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := cmkd.ValidateTenantID(tenant); err != nil {
		return nil, err
	}
	if len(plaintext) > s.cfg.MaxRecordSize {
		return nil, fmt.Errorf("encrypt %s: %w: %d bytes, limit %d", tenant, ErrTooLarge, len(plaintext), s.cfg.MaxRecordSize)
	}
	out, err := s.encrypt(ctx, tenant, plaintext, aad)
	if errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnknownTenant) {
		// The DEK this process held for writes is gone: another process
		// removed the tenant and added it again. Start from the database.
		s.wipe(tenant)
		out, err = s.encrypt(ctx, tenant, plaintext, aad)
	}
	if err != nil {
		return nil, fmt.Errorf("encrypt %s: %w", tenant, err)
	}
	return out, nil
}

func (s *Store) encrypt(ctx context.Context, tenant string, plaintext, aad []byte) ([]byte, error) {
	id, k, err := s.writeDEK(ctx, tenant)
	if err != nil {
		s.forget(tenant, err)
		return nil, err
	}
	// The DEK may come from this process's memory alone. Check in the
	// database that the tenant exists, is not sealed and still has this
	// DEK, as Put's guarded write does: a ciphertext under a DEK that is
	// gone could never be read.
	if _, err := s.b.GetDEK(ctx, tenant, id); err != nil {
		s.forget(tenant, err)
		return nil, err
	}
	out, err := sealEnvelope(k, tenant, id, plaintext, aad)
	if err != nil {
		return nil, err
	}
	s.used(ctx, tenant, id)
	return out, nil
}

// Decrypt opens a ciphertext Encrypt made for tenant with the same aad. It
// reads the DEK the ciphertext names from the database, which checks that
// the tenant exists (ErrUnknownTenant), is not sealed (ErrSealed) and has
// that DEK, then unwraps it (or takes it from the cache). A ciphertext that
// is malformed, tampered with, made for another tenant or aad, or names a
// DEK the tenant does not have (it was destroyed) fails with ErrIntegrity.
func (s *Store) Decrypt(ctx context.Context, tenant string, ciphertext, aad []byte) ([]byte, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if err := cmkd.ValidateTenantID(tenant); err != nil {
		return nil, err
	}
	p, err := parseEnvelope(ciphertext)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w: %w", tenant, ErrIntegrity, err)
	}
	layers, err := s.b.GetDEK(ctx, tenant, p.dekID)
	switch {
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnknownTenant):
		return nil, fmt.Errorf("decrypt %s: dek %s: %w: ciphertext names a key this tenant does not have", tenant, p.dekID, ErrIntegrity)
	case err != nil:
		s.forget(tenant, err)
		return nil, fmt.Errorf("decrypt %s: %w", tenant, err)
	}
	k, err := s.aead(ctx, layers)
	if err != nil {
		s.forget(tenant, err)
		return nil, fmt.Errorf("decrypt %s: %w", tenant, err)
	}
	out, err := k.Open(nil, p.nonce, p.ciphertext, envelopeAD(tenant, p.dekID, aad))
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w: ciphertext does not authenticate for this tenant and additional data", tenant, ErrIntegrity)
	}
	return out, nil
}

// sealEnvelope encrypts plaintext under aead (the DEK dekID) with a fresh
// random nonce.
func sealEnvelope(aead cipher.AEAD, tenant, dekID string, plaintext, aad []byte) ([]byte, error) {
	return sealFramed(aead, envelopeVersion, dekID, plaintext, envelopeAD(tenant, dekID, aad))
}

// parseEnvelope splits a ciphertext, which is outside input, into its
// parts; they alias it. Errors say what is wrong, never panic.
func parseEnvelope(c []byte) (parsedRecord, error) {
	switch {
	case len(c) == 0:
		return parsedRecord{}, errors.New("empty ciphertext")
	case c[0] != envelopeVersion:
		return parsedRecord{}, fmt.Errorf("unknown ciphertext format version %d", c[0])
	case len(c) < 2:
		return parsedRecord{}, errors.New("truncated ciphertext: no key id length")
	}
	n := int(c[1])
	if n == 0 || n > maxDEKIDLen {
		return parsedRecord{}, fmt.Errorf("bad key id length %d: want 1..%d", n, maxDEKIDLen)
	}
	if need := 2 + n + nonceSize + tagSize; len(c) < need {
		return parsedRecord{}, fmt.Errorf("truncated ciphertext: %d bytes, at least %d needed", len(c), need)
	}
	// DEK ids are printable ASCII (hex as newID makes them); anything else
	// is corruption, and would not even be a valid query argument in some
	// databases (PostgreSQL text refuses invalid UTF-8 and NUL).
	for _, b := range c[2 : 2+n] {
		if b < 0x21 || b > 0x7e {
			return parsedRecord{}, fmt.Errorf("key id holds byte %#02x: not a key id", b)
		}
	}
	return parsedRecord{
		dekID:      string(c[2 : 2+n]),
		nonce:      c[2+n : 2+n+nonceSize],
		ciphertext: c[2+n+nonceSize:],
	}, nil
}
