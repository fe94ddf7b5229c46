package kek

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
)

// Probe reads a key's state from Key Vault: a versionless key means its
// latest version, a versioned key that version. It fails only for an invalid
// key id, a vault outside Config.Policy (ErrVaultNotAllowed) or when ctx
// ends; everything Key Vault says, or fails to say, is an Outcome. A 404 is
// followed by a GET of the deleted key to tell Deleted from Purged. A probe
// refreshes the cache that local wraps rely on.
func (c *Client) Probe(ctx context.Context, id cmkd.KeyID) (KeyState, error) {
	if err := checkID(id); err != nil {
		return KeyState{}, err
	}
	rec, err := c.probe(ctx, id)
	if err != nil {
		return KeyState{}, err
	}
	return rec.state, nil
}

func (c *Client) probe(ctx context.Context, id cmkd.KeyID) (*probeRecord, error) {
	v, err := c.vault(id.Vault)
	if errors.Is(err, ErrVaultNotAllowed) {
		return nil, fmt.Errorf("probe %s: %w", id, err)
	}
	if err != nil {
		return failedRecord(id, &Error{Kind: ErrUnavailable, cause: err}), nil
	}
	b, issued, err := c.getKey(ctx, v, id)
	if ctx.Err() != nil {
		return nil, fmt.Errorf("probe %s: %w", id, ctx.Err())
	}
	if err != nil {
		return c.probeFailed(ctx, v, id, classify(err))
	}
	return c.record(id, b, issued)
}

// getKey reads a key version (the latest for a versionless id); issued is
// when the GET that answered was sent.
func (c *Client) getKey(ctx context.Context, v *vault, id cmkd.KeyID) (azkeys.KeyBundle, time.Time, error) {
	var resp azkeys.GetKeyResponse
	var issued time.Time
	err := c.do(ctx, func(ctx context.Context) error {
		return c.call(ctx, v, "getKey", func(ctx context.Context) error {
			var err error
			issued = time.Now()
			resp, err = v.kv.GetKey(ctx, id.Name, id.Version, nil)
			return err
		})
	})
	return resp.KeyBundle, issued, err
}

// record turns a GET answer into a probe record and caches it.
func (c *Client) record(id cmkd.KeyID, b azkeys.KeyBundle, issued time.Time) (*probeRecord, error) {
	rec, err := recordFrom(id, b, time.Now())
	if err != nil {
		return failedRecord(id, &Error{Kind: ErrUnavailable, cause: err}), nil
	}
	rec.issued = issued
	c.cache.put(rec, id.Version == "")
	return rec, nil
}

// probeFailed turns a failed GET into a record; the cache forgets the key
// unless the failure was transient.
func (c *Client) probeFailed(ctx context.Context, v *vault, id cmkd.KeyID, ke *Error) (*probeRecord, error) {
	rec := failedRecord(id, ke)
	if ke.Kind == ErrNotFound {
		var err error
		if rec, err = c.probeDeleted(ctx, v, id, ke); err != nil {
			return nil, err
		}
	}
	if !rec.state.Outcome.Transient() {
		c.cache.drop(id, time.Now())
	}
	return rec, nil
}

// probeDeleted tells a soft-deleted key from a purged one. When the deleted
// key cannot be read (no permission, unreachable) the outcome is that failure.
func (c *Client) probeDeleted(ctx context.Context, v *vault, id cmkd.KeyID, notFound *Error) (*probeRecord, error) {
	err := c.do(ctx, func(ctx context.Context) error {
		return c.call(ctx, v, "getDeletedKey", func(ctx context.Context) error {
			_, err := v.kv.GetDeletedKey(ctx, id.Name, nil)
			return err
		})
	})
	if ctx.Err() != nil {
		return nil, fmt.Errorf("probe %s: %w", id, ctx.Err())
	}
	switch ke := classify(err); {
	case ke == nil:
		rec := failedRecord(id, notFound)
		rec.state.Outcome = Deleted
		return rec, nil
	case ke.Kind == ErrNotFound:
		return failedRecord(id, notFound), nil
	default:
		return failedRecord(id, ke), nil
	}
}

func failedRecord(id cmkd.KeyID, ke *Error) *probeRecord {
	return &probeRecord{state: KeyState{
		Key:      id,
		Outcome:  outcomeOfProbe(ke),
		Err:      fmt.Errorf("probe %s: %w", id, ke),
		ProbedAt: time.Now(),
	}}
}

var errMalformed = errors.New("malformed key bundle")

// recordFrom reads a GET answer. The version comes from the answer's kid;
// the vault and name from what we asked for, since a vault behind another
// DNS name may answer with its canonical host.
func recordFrom(id cmkd.KeyID, b azkeys.KeyBundle, now time.Time) (*probeRecord, error) {
	if b.Key == nil || b.Key.KID == nil || b.Key.Kty == nil {
		return nil, errMalformed
	}
	if ver := b.Key.KID.Version(); ver != "" {
		id = id.At(ver)
	}
	if id.Version == "" {
		return nil, errMalformed
	}
	s := KeyState{Key: id, Kty: string(*b.Key.Kty), ProbedAt: now}
	if a := b.Attributes; a != nil {
		s.Enabled = a.Enabled != nil && *a.Enabled
		s.NotBefore = timeOf(a.NotBefore)
		s.Expires = timeOf(a.Expires)
	}
	for _, op := range b.Key.KeyOps {
		if op != nil {
			s.Ops = append(s.Ops, string(*op))
		}
	}
	s.judge(now)
	return &probeRecord{state: s, pub: rsaPublic(b.Key)}, nil
}

func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

// rsaPublic returns the RSA public key of an RSA key, nil for other keys or
// for a modulus too weak to wrap with.
func rsaPublic(k *azkeys.JSONWebKey) *rsa.PublicKey {
	kty := azkeys.KeyType(*k.Kty)
	if kty != azkeys.KeyTypeRSA && kty != azkeys.KeyTypeRSAHSM {
		return nil
	}
	n := new(big.Int).SetBytes(k.N)
	e := new(big.Int).SetBytes(k.E)
	if n.BitLen() < 2048 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 || e.Bit(0) == 0 {
		return nil
	}
	return &rsa.PublicKey{N: n, E: int(e.Int64())}
}
