package kek

import (
	"context"
	"fmt"
	"time"
)

// WrapTarget picks the key version DEKs go to: the newest version that is
// enabled, inside its validity window and whose key_ops allow wrapKey and
// unwrapKey — usually latest itself. latest is a probe of the versionless
// key. It returns "" when no version qualifies, or when the key is gone or
// cannot be asked about (deleted, purged, access denied, unreachable):
// then nothing may move. The worker's rewrap and `cmkd rewrap --dry-run`
// both ask it, so the plan and the run agree.
func (c *Client) WrapTarget(ctx context.Context, latest KeyState) (string, error) {
	now := time.Now()
	if latest.CanWrap(now) == nil {
		return latest.Key.Version, nil
	}
	switch latest.Outcome {
	case Usable, Disabled, Expired, NotYetValid:
		// The key is there; an older version may still qualify.
	default:
		return "", nil
	}
	versions, err := c.Versions(ctx, latest.Key.Versionless())
	if err != nil {
		return "", fmt.Errorf("wrap target of %s: %w", latest.Key.Versionless(), err)
	}
	for _, v := range versions {
		if !v.Enabled || (!v.NotBefore.IsZero() && now.Before(v.NotBefore)) || (!v.Expires.IsZero() && !now.Before(v.Expires)) {
			continue
		}
		// The listing has no key_ops; a probe of the version has.
		st, err := c.Probe(ctx, latest.Key.At(v.Version))
		if err != nil {
			return "", err
		}
		if st.CanWrap(now) == nil {
			return v.Version, nil
		}
	}
	return "", nil
}
