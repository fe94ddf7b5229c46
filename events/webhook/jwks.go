package webhook

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// minRefresh bounds JWKS fetches caused by unknown key ids, so forged
// tokens cannot make cmkd hammer the key endpoint.
const minRefresh = 30 * time.Second

// bearerValidator validates RS256 tokens against a JWKS it caches.
type bearerValidator struct {
	cfg    EntraAuth
	parser *jwt.Parser

	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	fetched time.Time
}

func newBearerValidator(cfg EntraAuth) *bearerValidator {
	return &bearerValidator{
		cfg: cfg,
		parser: jwt.NewParser(
			jwt.WithValidMethods([]string{"RS256"}),
			jwt.WithAudience(cfg.Audience),
			jwt.WithIssuer(cfg.Issuer),
			jwt.WithLeeway(cfg.Skew),
			jwt.WithExpirationRequired(),
		),
	}
}

// validate checks signature, aud, iss, exp and nbf.
func (b *bearerValidator) validate(ctx context.Context, raw string) error {
	_, err := b.parser.Parse(raw, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return b.key(ctx, kid)
	})
	if err != nil {
		return fmt.Errorf("bearer token: %w", err)
	}
	return nil
}

// key returns the signing key kid, fetching the JWKS when it is unknown.
func (b *bearerValidator) key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	if kid == "" {
		return nil, errors.New("token has no kid")
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if k, ok := b.keys[kid]; ok {
		return k, nil
	}
	if !b.fetched.IsZero() && time.Since(b.fetched) < minRefresh {
		return nil, fmt.Errorf("unknown signing key %q", kid)
	}
	keys, err := fetchJWKS(ctx, b.cfg.HTTPClient, b.cfg.JWKSURL)
	b.fetched = time.Now()
	if err != nil {
		return nil, err
	}
	b.keys = keys
	if k, ok := keys[kid]; ok {
		return k, nil
	}
	return nil, fmt.Errorf("unknown signing key %q", kid)
}

type jwkSet struct {
	Keys []struct {
		Kty, Kid, N, E, Use string
	} `json:"keys"`
}

func fetchJWKS(ctx context.Context, hc *http.Client, url string) (map[string]*rsa.PublicKey, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks: status %d", resp.StatusCode)
	}
	var set jwkSet
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&set); err != nil {
		return nil, fmt.Errorf("fetch jwks: %w", err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Kid == "" || (k.Use != "" && k.Use != "sig") {
			continue
		}
		if pk, err := rsaKey(k.N, k.E); err == nil {
			keys[k.Kid] = pk
		}
	}
	return keys, nil
}

func rsaKey(n64, e64 string) (*rsa.PublicKey, error) {
	n, err := base64.RawURLEncoding.DecodeString(n64)
	if err != nil {
		return nil, err
	}
	e, err := base64.RawURLEncoding.DecodeString(e64)
	if err != nil || len(e) == 0 || len(e) > 4 {
		return nil, errors.New("bad exponent")
	}
	exp := int(new(big.Int).SetBytes(e).Int64())
	if exp < 3 || len(n) < 256 {
		return nil, errors.New("weak key")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: exp}, nil
}
