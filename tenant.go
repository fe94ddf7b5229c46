package cmkd

import (
	"errors"
	"fmt"
)

// ErrInvalidTenant is wrapped by ValidateTenantID's errors.
var ErrInvalidTenant = errors.New("invalid tenant id")

// MaxTenantIDLen bounds a tenant id.
const MaxTenantIDLen = 64

// ValidateTenantID checks that id is [A-Za-z0-9_-]{1,64}: tenant ids appear
// in NATS subjects (cmkd.status.<tenant>.<kind>), where dots, wildcards and
// spaces would be read as syntax.
func ValidateTenantID(id string) error {
	if len(id) == 0 || len(id) > MaxTenantIDLen {
		return fmt.Errorf("%w %q: length must be 1 to %d", ErrInvalidTenant, id, MaxTenantIDLen)
	}
	if !isToken(id) {
		return fmt.Errorf("%w %q: only A-Z a-z 0-9 _ - allowed", ErrInvalidTenant, id)
	}
	return nil
}

// isToken reports whether s is non-empty and only [A-Za-z0-9_-]: a NATS
// subject token that is never a wildcard.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
