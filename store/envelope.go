package store

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	recordVersion = 1
	nonceSize     = 12
	tagSize       = 16
	maxDEKIDLen   = 64
	// DEKSize is the size of a plaintext DEK: AES-256.
	DEKSize = 32
	// KCVSize is the size of a key check value.
	KCVSize = 8
)

var errMalformedRecord = errors.New("malformed record")

// kcvLabel is the fixed message of the key check value; changing it makes
// every stored KCV mismatch.
const kcvLabel = "cmkd key check value v1"

// KeyCheckValue is HMAC-SHA256(dek, "cmkd key check value v1") truncated to
// 8 bytes. It identifies a DEK without revealing it, so a wrong or corrupted
// unwrap is caught the moment it happens.
func KeyCheckValue(dek []byte) []byte {
	m := hmac.New(sha256.New, dek)
	m.Write([]byte(kcvLabel))
	return m.Sum(nil)[:KCVSize]
}

// checkKCV compares dek's key check value with want in constant time.
func checkKCV(dek, want []byte) bool {
	return len(want) == KCVSize && subtle.ConstantTimeCompare(KeyCheckValue(dek), want) == 1
}

// additionalData binds a ciphertext to its tenant, record key and DEK. The
// parts are length-prefixed so that no two tuples encode alike.
func additionalData(tenant, key, dekID string) []byte {
	ad := make([]byte, 0, 8+12+len(tenant)+len(key)+len(dekID))
	ad = append(ad, "cmkd/v1"...)
	for _, p := range []string{tenant, key, dekID} {
		ad = binary.BigEndian.AppendUint32(ad, uint32(len(p))) // #nosec G115 -- tenant ids, record keys and DEK ids are bounded far below 4 GiB
		ad = append(ad, p...)
	}
	return ad
}

// sealRecord encrypts value under aead (a DEK) with a fresh random nonce.
func sealRecord(aead cipher.AEAD, tenant, key, dekID string, value []byte) ([]byte, error) {
	return sealFramed(aead, recordVersion, dekID, value, additionalData(tenant, key, dekID))
}

// sealFramed encrypts plaintext under aead (the DEK dekID) with a fresh
// random nonce, framed as version | len(dekID) | dekID | nonce |
// ciphertext+tag: the form of records and of envelope ciphertexts, told
// apart by version and by their additional data ad.
func sealFramed(aead cipher.AEAD, version byte, dekID string, plaintext, ad []byte) ([]byte, error) {
	if len(dekID) == 0 || len(dekID) > maxDEKIDLen {
		return nil, fmt.Errorf("dek id of %d bytes: want 1..%d", len(dekID), maxDEKIDLen)
	}
	hdr := 2 + len(dekID)
	out := make([]byte, hdr+nonceSize, hdr+nonceSize+len(plaintext)+tagSize)
	out[0] = version
	out[1] = byte(len(dekID)) // #nosec G115 -- checked above to be at most maxDEKIDLen
	copy(out[2:], dekID)
	nonce := out[hdr : hdr+nonceSize]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("nonce: %w", err)
	}
	return aead.Seal(out, nonce, plaintext, ad), nil // #nosec G407 -- nonce read from crypto/rand just above, fresh for every ciphertext
}

// parsedRecord is a record blob split into its parts; it aliases the blob.
type parsedRecord struct {
	dekID      string
	nonce      []byte
	ciphertext []byte
}

// parseRecord splits a stored blob; the database is outside input.
func parseRecord(blob []byte) (parsedRecord, error) {
	if len(blob) < 2 || blob[0] != recordVersion {
		return parsedRecord{}, errMalformedRecord
	}
	n := int(blob[1])
	if n == 0 || n > maxDEKIDLen || len(blob) < 2+n+nonceSize+tagSize {
		return parsedRecord{}, errMalformedRecord
	}
	return parsedRecord{
		dekID:      string(blob[2 : 2+n]),
		nonce:      blob[2+n : 2+n+nonceSize],
		ciphertext: blob[2+n+nonceSize:],
	}, nil
}

// openRecord decrypts p with aead (a DEK) in place: the plaintext
// overwrites p's ciphertext, so the caller must own the blob p was parsed
// from. Any failure is an integrity error.
func openRecord(aead cipher.AEAD, tenant, key string, p parsedRecord) ([]byte, error) {
	out, err := aead.Open(p.ciphertext[:0], p.nonce, p.ciphertext, additionalData(tenant, key, p.dekID))
	if err != nil {
		return nil, fmt.Errorf("record %s/%s: %w: ciphertext does not authenticate for this tenant and key", tenant, key, ErrIntegrity)
	}
	return out, nil
}

func newAEAD(dek []byte) (cipher.AEAD, error) {
	if len(dek) != DEKSize {
		return nil, fmt.Errorf("dek: %w: size %d", ErrIntegrity, len(dek))
	}
	b, err := aes.NewCipher(dek)
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(b)
}
