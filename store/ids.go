package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"unicode/utf8"

	"github.com/cmkd-io/cmkd"
)

// MaxRecordKeyLen bounds record keys.
const MaxRecordKeyLen = 1024

// validateRecordKey accepts 1..MaxRecordKeyLen bytes of UTF-8. A key that
// is not UTF-8 could be stored, but JSON (and so every listing a program
// reads) would show it with U+FFFD in place of its bytes, naming a key
// that does not exist.
func validateRecordKey(key string) error {
	if key == "" || len(key) > MaxRecordKeyLen {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrInvalidKey, len(key), MaxRecordKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w %q: not valid UTF-8 (from byte %d); record keys are text", ErrInvalidKey, key, invalidUTF8At(key))
	}
	return nil
}

// invalidUTF8At is the offset of the first byte of s that is not UTF-8.
func invalidUTF8At(s string) int {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return i
			}
		}
	}
	return len(s)
}

// checkKey checks that key names a key, not one version of it: a tenant
// follows its key's versions.
func checkKey(key cmkd.KeyID) error {
	switch {
	case key.IsZero():
		return fmt.Errorf("%w: no key given", cmkd.ErrInvalidKeyID)
	case key.Version != "":
		return fmt.Errorf("%w %s: names version %s; give the key without a version, cmkd follows its versions",
			cmkd.ErrInvalidKeyID, key, key.Version)
	}
	return nil
}

// newID returns a random 128-bit id in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// StoredKey is how a backend stores a tenant's key: its URL, or "" for
// none (a tenant under the platform layer alone, or one added before the
// store had a platform key).
func StoredKey(k cmkd.KeyID) string {
	if k.IsZero() {
		return ""
	}
	return k.URL()
}

// ParseStoredKey reads what StoredKey wrote.
func ParseStoredKey(s string) (cmkd.KeyID, error) {
	if s == "" {
		return cmkd.KeyID{}, nil
	}
	return cmkd.ParseKeyID(s)
}
