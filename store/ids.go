package store

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"strings"
)

// MaxRecordKeyLen bounds record keys.
const MaxRecordKeyLen = 1024

// ValidateTenantID checks that id is [A-Za-z0-9_-]{1,64}: tenant ids appear
// in NATS subjects, where dots, wildcards and spaces would be read as syntax.
func ValidateTenantID(id string) error {
	if len(id) == 0 || len(id) > 64 {
		return fmt.Errorf("%w %q: length must be 1 to 64", ErrInvalidTenant, id)
	}
	for i := 0; i < len(id); i++ {
		if !tenantByte(id[i]) {
			return fmt.Errorf("%w %q: only A-Z a-z 0-9 _ - allowed", ErrInvalidTenant, id)
		}
	}
	return nil
}

func tenantByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

func validateRecordKey(key string) error {
	if key == "" || len(key) > MaxRecordKeyLen {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrInvalidKey, len(key), MaxRecordKeyLen)
	}
	return nil
}

// ParseKeyURL checks that s is a versionless Key Vault key URL,
// https://host/keys/name, and returns it normalised (lower-case scheme and
// host, no trailing slash) so that URLs from events and from users compare
// equal.
func ParseKeyURL(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || !strings.EqualFold(u.Scheme, "https") || u.Host == "" ||
		u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("%w %q: want https://vault/keys/name", ErrInvalidKeyURL, s)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] != "keys" || !keyName(parts[1]) {
		return "", fmt.Errorf("%w %q: want https://vault/keys/name", ErrInvalidKeyURL, s)
	}
	return "https://" + strings.ToLower(u.Host) + "/keys/" + parts[1], nil
}

// keyName is Key Vault's rule for key names: 1-127 letters, digits, dashes.
func keyName(s string) bool {
	if len(s) == 0 || len(s) > 127 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// KeyVersion returns the version of a versioned key id
// (https://vault/keys/name/version), or "" if kid has none.
func KeyVersion(kid string) string {
	u, err := url.Parse(kid)
	if err != nil {
		return ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 3 || parts[0] != "keys" {
		return ""
	}
	return parts[2]
}

// newID returns a random 128-bit id in hex.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
