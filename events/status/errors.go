package status

import "errors"

// ErrInvalidEvent marks a status event that cannot be published or read:
// a malformed document, or a tenant or kind that is not a subject token.
var ErrInvalidEvent = errors.New("invalid status event")
