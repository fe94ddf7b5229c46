package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/cmkd-io/cmkd"
)

// MaxRecordKeyLen bounds record keys.
const MaxRecordKeyLen = 1024

func validateRecordKey(key string) error {
	if key == "" || len(key) > MaxRecordKeyLen {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrInvalidKey, len(key), MaxRecordKeyLen)
	}
	return nil
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
