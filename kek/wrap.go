package kek

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
)

// Key wrap algorithms, as Key Vault names them.
const (
	algRSAOAEP256 = string(azkeys.EncryptionAlgorithmRSAOAEP256)
	algA256KW     = string(azkeys.EncryptionAlgorithmA256KW)
	algA192KW     = string(azkeys.EncryptionAlgorithmA192KW)
	algA128KW     = string(azkeys.EncryptionAlgorithmA128KW)
)

// Wrap wraps dek under key (versionless means its latest version). RSA keys
// are wrapped locally with RSA-OAEP-256, but only while a probe of the
// version no older than Config.ProbeFreshness shows it usable with wrapKey
// and unwrapKey allowed; otherwise Wrap probes first (one GET). oct keys are
// wrapped by Key Vault with AES key wrap.
func (c *Client) Wrap(ctx context.Context, id cmkd.KeyID, dek []byte) (cmkd.Wrapped, error) {
	if err := checkID(id); err != nil {
		return cmkd.Wrapped{}, err
	}
	var err error
	rec := c.cache.get(id, c.cfg.ProbeFreshness, time.Now())
	if rec == nil {
		if rec, err = c.probeShared(ctx, id); err != nil {
			return cmkd.Wrapped{}, err
		}
	}
	if err := rec.state.CanWrap(time.Now()); err != nil {
		return cmkd.Wrapped{}, fmt.Errorf("wrap %s: %w", rec.state.Key, err)
	}
	switch azkeys.KeyType(rec.state.Kty) {
	case azkeys.KeyTypeRSA, azkeys.KeyTypeRSAHSM:
		if rec.pub != nil {
			return wrapLocal(rec, dek)
		}
		return c.wrapRemote(ctx, rec, []string{algRSAOAEP256}, dek)
	case azkeys.KeyTypeOct, azkeys.KeyTypeOctHSM:
		return c.wrapRemote(ctx, rec, octAlgs(rec), dek)
	default:
		return cmkd.Wrapped{}, fmt.Errorf("wrap %s: kty %s cannot wrap: %w", rec.state.Key, rec.state.Kty, ErrOperationForbidden)
	}
}

func wrapLocal(rec *probeRecord, dek []byte) (cmkd.Wrapped, error) {
	kid := rec.state.Key
	v, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, rec.pub, dek, nil)
	if err != nil {
		// Only the DEK's length can make this fail; say that, not the bytes.
		return cmkd.Wrapped{}, fmt.Errorf("wrap %s: %d-byte dek: %w", kid, len(dek), ErrBadRequest)
	}
	return cmkd.Wrapped{KID: kid, Alg: algRSAOAEP256, Value: v}, nil
}

// octAlgs lists the AES-KW algorithms to try: the one that worked before, or
// A256KW first. Key Vault does not report an oct key's size, so a 400 for
// the wrong size moves on to the next.
func octAlgs(rec *probeRecord) []string {
	if a := rec.alg(); a != "" {
		return []string{a}
	}
	return []string{algA256KW, algA192KW, algA128KW}
}

func (c *Client) wrapRemote(ctx context.Context, rec *probeRecord, algs []string, dek []byte) (cmkd.Wrapped, error) {
	id := rec.state.Key
	var err error
	for _, alg := range algs {
		var w cmkd.Wrapped
		w, err = c.wrapKey(ctx, id, alg, dek)
		if err == nil {
			rec.setAlg(alg)
			return w, nil
		}
		if !errors.Is(err, ErrBadRequest) {
			break
		}
	}
	c.forgetOnRefusal(id, err)
	return cmkd.Wrapped{}, fmt.Errorf("wrap %s: %w", id, err)
}

func (c *Client) wrapKey(ctx context.Context, id cmkd.KeyID, alg string, dek []byte) (cmkd.Wrapped, error) {
	v, err := c.vault(id.Vault)
	if err != nil {
		return cmkd.Wrapped{}, err
	}
	var resp azkeys.WrapKeyResponse
	ea := azkeys.EncryptionAlgorithm(alg)
	err = c.do(ctx, func(ctx context.Context) error {
		return c.call(ctx, v, "wrapKey", func(ctx context.Context) error {
			var err error
			resp, err = v.kv.WrapKey(ctx, id.Name, id.Version, azkeys.KeyOperationParameters{Algorithm: &ea, Value: dek}, nil)
			return err
		})
	})
	if err != nil {
		return cmkd.Wrapped{}, err
	}
	return cmkd.Wrapped{KID: id, Alg: alg, Value: resp.Result}, nil
}

// Unwrap asks Key Vault to unwrap w under w.KID with w.Alg.
func (c *Client) Unwrap(ctx context.Context, w cmkd.Wrapped) ([]byte, error) {
	id := w.KID
	if err := checkID(id); err != nil {
		return nil, err
	}
	if id.Version == "" {
		return nil, fmt.Errorf("unwrap %s: %w: version required", id, cmkd.ErrInvalidKeyID)
	}
	v, err := c.vault(id.Vault)
	if err != nil {
		return nil, fmt.Errorf("unwrap %s: %w", id, err)
	}
	var resp azkeys.UnwrapKeyResponse
	alg := azkeys.EncryptionAlgorithm(w.Alg)
	err = c.do(ctx, func(ctx context.Context) error {
		return c.call(ctx, v, "unwrapKey", func(ctx context.Context) error {
			var err error
			resp, err = v.kv.UnwrapKey(ctx, id.Name, id.Version, azkeys.KeyOperationParameters{Algorithm: &alg, Value: w.Value}, nil)
			return err
		})
	})
	if err != nil {
		c.forgetOnRefusal(id, err)
		return nil, fmt.Errorf("unwrap %s: %w", id, err)
	}
	return resp.Result, nil
}

// forgetOnRefusal drops cached probes when Key Vault refused the key for
// good, so that no local wrap relies on a probe the vault has contradicted.
func (c *Client) forgetOnRefusal(id cmkd.KeyID, err error) {
	for _, kind := range []error{ErrDisabled, ErrAccessDenied, ErrNotFound, ErrOperationForbidden} {
		if errors.Is(err, kind) {
			c.cache.drop(id, time.Now())
			return
		}
	}
}
