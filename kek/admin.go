package kek

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
)

// Key administration: what an operator does to a key in Key Vault (the CLI's
// `cmkd vault` commands). It goes through the same vault clients, limiter,
// retries and error classification as cmkd's own calls, so kek stays the
// one door to Key Vault.

// KeyInfo describes one key version as administration reports it.
type KeyInfo struct {
	KID     cmkd.KeyID
	Kty     string
	Enabled bool
	Expires time.Time // zero when unset
}

// CreateKey creates key name in vault (a vault URL) with key type kty
// ("RSA", "RSA-HSM", "oct-HSM") and size in bits (0: Key Vault's default,
// 256 for oct-HSM). The name keeps the case it is given: Key Vault shows it
// as created, and compares it without regard to case.
// maxKeySize is the largest key Key Vault creates (RSA 4096), with room.
const maxKeySize = 16384

func (c *Client) CreateKey(ctx context.Context, vault, name, kty string, size int) (KeyInfo, error) {
	id, err := cmkd.ParseKeyID(vault + "/keys/" + name)
	if err != nil {
		return KeyInfo{}, err
	}
	p := azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyType(kty))}
	switch {
	case size < 0 || size > maxKeySize:
		return KeyInfo{}, fmt.Errorf("key size %d: Key Vault's keys are at most %d bits", size, maxKeySize)
	case size != 0:
		p.KeySize = to.Ptr(int32(size)) // #nosec G115 -- bounded just above
	case kty == string(azkeys.KeyTypeOctHSM):
		p.KeySize = to.Ptr[int32](256)
	}
	return c.admin(ctx, "createKey", id, func(ctx context.Context, kv *azkeys.Client) (*azkeys.KeyBundle, error) {
		resp, err := kv.CreateKey(ctx, name, p, nil)
		return &resp.KeyBundle, err
	})
}

// RotateKey makes a new current version of key.
func (c *Client) RotateKey(ctx context.Context, key cmkd.KeyID) (KeyInfo, error) {
	info, err := c.admin(ctx, "rotateKey", key, func(ctx context.Context, kv *azkeys.Client) (*azkeys.KeyBundle, error) {
		resp, err := kv.RotateKey(ctx, key.Name, nil)
		return &resp.KeyBundle, err
	})
	c.cache.drop(key, time.Now())
	return info, err
}

// SetEnabled enables or disables key: the version it names, or the latest.
func (c *Client) SetEnabled(ctx context.Context, key cmkd.KeyID, on bool) (KeyInfo, error) {
	info, err := c.admin(ctx, "updateKey", key, func(ctx context.Context, kv *azkeys.Client) (*azkeys.KeyBundle, error) {
		resp, err := kv.UpdateKey(ctx, key.Name, key.Version,
			azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)}}, nil)
		return &resp.KeyBundle, err
	})
	c.cache.drop(key, time.Now())
	return info, err
}

// DeleteKey soft-deletes key with all its versions.
func (c *Client) DeleteKey(ctx context.Context, key cmkd.KeyID) (KeyInfo, error) {
	info, err := c.admin(ctx, "deleteKey", key, func(ctx context.Context, kv *azkeys.Client) (*azkeys.KeyBundle, error) {
		resp, err := kv.DeleteKey(ctx, key.Name, nil)
		return &azkeys.KeyBundle{Key: resp.Key, Attributes: resp.Attributes}, err
	})
	c.cache.drop(key, time.Now())
	return info, err
}

// RecoverKey undoes DeleteKey.
func (c *Client) RecoverKey(ctx context.Context, key cmkd.KeyID) (KeyInfo, error) {
	return c.admin(ctx, "recoverDeletedKey", key, func(ctx context.Context, kv *azkeys.Client) (*azkeys.KeyBundle, error) {
		resp, err := kv.RecoverDeletedKey(ctx, key.Name, nil)
		return &resp.KeyBundle, err
	})
}

// PurgeKey destroys a deleted key for good.
func (c *Client) PurgeKey(ctx context.Context, key cmkd.KeyID) error {
	_, err := c.admin(ctx, "purgeDeletedKey", key, func(ctx context.Context, kv *azkeys.Client) (*azkeys.KeyBundle, error) {
		_, err := kv.PurgeDeletedKey(ctx, key.Name, nil)
		return nil, err
	})
	return err
}

// admin runs one administrative call through the vault's limiter and
// retries; errors are classified (*Error) like every other call's.
func (c *Client) admin(ctx context.Context, op string, key cmkd.KeyID,
	fn func(context.Context, *azkeys.Client) (*azkeys.KeyBundle, error)) (KeyInfo, error) {
	if err := checkID(key); err != nil {
		return KeyInfo{}, err
	}
	v, err := c.vault(key.Vault)
	if err != nil {
		return KeyInfo{}, err
	}
	var b *azkeys.KeyBundle
	err = c.do(ctx, func(ctx context.Context) error {
		return c.call(ctx, v, op, func(ctx context.Context) error {
			var err error
			b, err = fn(ctx, v.kv)
			return err
		})
	})
	if err != nil {
		return KeyInfo{}, fmt.Errorf("%s %s: %w", op, key, err)
	}
	return keyInfo(key, b), nil
}

func keyInfo(key cmkd.KeyID, b *azkeys.KeyBundle) KeyInfo {
	info := KeyInfo{KID: key}
	if b == nil {
		return info
	}
	if b.Key != nil {
		if b.Key.KID != nil {
			if ver := b.Key.KID.Version(); ver != "" {
				info.KID = key.At(ver)
			}
		}
		if b.Key.Kty != nil {
			info.Kty = string(*b.Key.Kty)
		}
	}
	if a := b.Attributes; a != nil {
		info.Enabled = a.Enabled != nil && *a.Enabled
		info.Expires = timeOf(a.Expires)
	}
	return info
}
