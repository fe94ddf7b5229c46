package store

import (
	"context"
	"crypto/cipher"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

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
	return appendEnvelopeAD(make([]byte, 0, envelopeADLen(tenant, dekID, aad)), tenant, dekID, aad)
}

func envelopeADLen(tenant, dekID string, aad []byte) int {
	return len(envelopeLabel) + 12 + len(tenant) + len(dekID) + len(aad)
}

// appendEnvelopeAD appends the label, then tenant, dekID and aad, each
// after its length.
func appendEnvelopeAD[ID string | []byte](ad []byte, tenant string, dekID ID, aad []byte) []byte {
	ad = append(ad, envelopeLabel...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(tenant))) // #nosec G115 -- tenant ids are at most MaxTenantIDLen bytes
	ad = append(ad, tenant...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(dekID))) // #nosec G115 -- DEK ids are at most maxDEKIDLen bytes
	ad = append(ad, dekID...)
	ad = binary.BigEndian.AppendUint32(ad, uint32(len(aad))) // #nosec G115 -- bounded by MaxRecordSize and id limits, far below 4 GiB
	return append(ad, aad...)
}

// adBuffers recycles Decrypt's additional-data buffers: building one per
// call was a tenth of a warm decrypt. AES-GCM keeps no reference to it.
// A large aad's buffer is left to the collector rather than kept.
var adBuffers = sync.Pool{New: func() any { return new([]byte) }}

const maxPooledAD = 4 << 10

// openEnvelope opens p under k for tenant and aad.
func openEnvelope(k cipher.AEAD, tenant string, p envelopeView, aad []byte) ([]byte, error) {
	buf := adBuffers.Get().(*[]byte)
	*buf = appendEnvelopeAD((*buf)[:0], tenant, p.dekID, aad)
	out, err := k.Open(nil, p.nonce, p.ciphertext, *buf)
	if cap(*buf) <= maxPooledAD {
		adBuffers.Put(buf)
	}
	return out, err
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
	// The DEK may come from this process's memory alone. Unless the
	// database confirmed it within StateRecheck, check there that the
	// tenant exists, is not sealed and still has this DEK, as Put's
	// guarded write does: a ciphertext under a DEK that is gone could
	// never be read.
	now := s.now()
	refresh, ok := s.cache.confirmed(id, tenant, now, s.cfg.StateRecheck)
	switch {
	case !ok:
		if _, err := s.b.GetDEK(ctx, tenant, id); err != nil {
			s.forget(tenant, err)
			return nil, err
		}
		s.cache.confirm(id, tenant, now)
	case refresh:
		s.refreshAhead(tenant, id)
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
// that DEK, then unwraps it (or takes it from the cache); a cached DEK the
// database confirmed less than Config.StateRecheck ago is used without
// asking again, so a warm decrypt costs little more than AES-GCM. A ciphertext that
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
	readAt := s.now()
	// string(p.dekID) here, not kept: the cache lookup does not keep it,
	// so the conversion costs no allocation.
	k, refresh, ok := s.cache.fresh(string(p.dekID), tenant, readAt, s.cfg.StateRecheck)
	if refresh {
		s.refreshAhead(tenant, string(p.dekID))
	}
	if !ok {
		if k, err = s.confirmedAEAD(ctx, tenant, string(p.dekID), readAt); err != nil {
			return nil, fmt.Errorf("decrypt %s: %w", tenant, err)
		}
	}
	out, err := openEnvelope(k, tenant, p, aad)
	if err != nil {
		return nil, fmt.Errorf("decrypt %s: %w: ciphertext does not authenticate for this tenant and additional data", tenant, ErrIntegrity)
	}
	return out, nil
}

// refreshAhead confirms the tenant's DEK id in the background before its
// StateRecheck window ends, so that a DEK in steady use is never waited
// for. The confirmation counts from the start of its read, as a blocking
// one does, so the window's bound holds; a seal or a missing DEK found
// this way drops the DEKs as a blocking read would.
func (s *Store) refreshAhead(tenant, id string) {
	// Under mu, so that Close, which sets closed and then takes mu before
	// it waits, never waits while one is still being added.
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		s.cache.refreshed(id, tenant)
		return
	}
	s.refreshes.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.refreshes.Done()
		ctx, cancel := context.WithTimeout(context.Background(), refreshTimeout)
		defer cancel()
		readAt := s.now()
		_, err := s.b.GetDEK(ctx, tenant, id)
		switch {
		case err == nil:
			s.cache.confirm(id, tenant, readAt)
		case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnknownTenant):
			s.cache.drop(id, tenant)
		default:
			s.forget(tenant, err)
			s.cache.refreshed(id, tenant) // the next call past the window asks itself
		}
	}()
}

// refreshTimeout bounds a confirmation ahead of time; one that fails
// leaves the next call past the window to ask the database itself.
const refreshTimeout = 10 * time.Second

// confirmedAEAD reads the tenant's DEK id from the database, which checks
// the tenant's state, and returns its AEAD, confirmed as of readAt.
func (s *Store) confirmedAEAD(ctx context.Context, tenant, id string, readAt time.Time) (cipher.AEAD, error) {
	layers, err := s.b.GetDEK(ctx, tenant, id)
	switch {
	case errors.Is(err, ErrNotFound) && !errors.Is(err, ErrUnknownTenant):
		// Destroyed with its tenant, or never this tenant's: a copy in
		// this process's memory must not outlive it.
		s.cache.drop(id, tenant)
		return nil, fmt.Errorf("dek %s: %w: ciphertext names a key this tenant does not have", id, ErrIntegrity)
	case err != nil:
		s.forget(tenant, err)
		return nil, err
	}
	k, err := s.aead(ctx, layers)
	if err != nil {
		s.forget(tenant, err)
		return nil, err
	}
	s.cache.confirm(id, tenant, readAt)
	return k, nil
}

// sealEnvelope encrypts plaintext under aead (the DEK dekID) with a fresh
// random nonce.
func sealEnvelope(aead cipher.AEAD, tenant, dekID string, plaintext, aad []byte) ([]byte, error) {
	return sealFramed(aead, envelopeVersion, dekID, plaintext, envelopeAD(tenant, dekID, aad))
}

// envelopeView is a parsed ciphertext; its parts alias the ciphertext.
type envelopeView struct {
	dekID, nonce, ciphertext []byte
}

// parseEnvelope splits a ciphertext, which is outside input, into its
// parts; they alias it. Errors say what is wrong, never panic.
func parseEnvelope(c []byte) (envelopeView, error) {
	switch {
	case len(c) == 0:
		return envelopeView{}, errors.New("empty ciphertext")
	case c[0] != envelopeVersion:
		return envelopeView{}, fmt.Errorf("unknown ciphertext format version %d", c[0])
	case len(c) < 2:
		return envelopeView{}, errors.New("truncated ciphertext: no key id length")
	}
	n := int(c[1])
	if n == 0 || n > maxDEKIDLen {
		return envelopeView{}, fmt.Errorf("bad key id length %d: want 1..%d", n, maxDEKIDLen)
	}
	if need := 2 + n + nonceSize + tagSize; len(c) < need {
		return envelopeView{}, fmt.Errorf("truncated ciphertext: %d bytes, at least %d needed", len(c), need)
	}
	// DEK ids are printable ASCII (hex as newID makes them); anything else
	// is corruption, and would not even be a valid query argument in some
	// databases (PostgreSQL text refuses invalid UTF-8 and NUL).
	for _, b := range c[2 : 2+n] {
		if b < 0x21 || b > 0x7e {
			return envelopeView{}, fmt.Errorf("key id holds byte %#02x: not a key id", b)
		}
	}
	return envelopeView{
		dekID:      c[2 : 2+n],
		nonce:      c[2+n : 2+n+nonceSize],
		ciphertext: c[2+n+nonceSize:],
	}, nil
}
