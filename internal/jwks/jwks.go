// Package jwks keeps the RS256 signing keys of a token issuer (a JSON Web
// Key Set, as Microsoft Entra ID publishes): fetched in the background,
// shared by the requests that wait for it, refreshed on a schedule and on
// an unknown key id at most once a minute. The webhook source and the data
// API validate Entra ID tokens with it.
package jwks

import (
	"context"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Bounds on fetching the signing keys. A fetch runs on its own, not on the
// request that needed it, so a caller hanging up cannot make it fail;
// every request needing keys meanwhile waits for that one fetch.
const (
	// minRefresh bounds fetches caused by unknown key ids, so forged tokens
	// cannot make cmkd hammer the key endpoint.
	minRefresh = time.Minute
	// FailedBackoff is the pause after a fetch that failed: short, since
	// requests wait for it, but not none, so a failing endpoint is not
	// asked again for every request. A caller told to retry (Retry-After)
	// may say this.
	FailedBackoff = 5 * time.Second
	fetchTimeout  = 10 * time.Second
)

// ErrKeysUnavailable means a token could not be checked because the
// signing keys could not be fetched: a retry may succeed.
var ErrKeysUnavailable = errors.New("signing keys unavailable")

// Parser parses the tokens of an Entra ID issuer for audience: RS256 only,
// an expiry required, skew allowed on the times.
func Parser(issuer, audience string, skew time.Duration) *jwt.Parser {
	return jwt.NewParser(
		jwt.WithValidMethods([]string{"RS256"}),
		jwt.WithAudience(audience),
		jwt.WithIssuer(issuer),
		jwt.WithLeeway(skew),
		jwt.WithExpirationRequired(),
	)
}

// Cache holds one issuer's signing keys. It is safe for concurrent use.
type Cache struct {
	url     string
	hc      *http.Client
	refresh time.Duration
	log     *slog.Logger
	what    string // who fetches, in logs

	mu      sync.Mutex
	keys    map[string]*rsa.PublicKey
	fetched time.Time // last successful fetch
	failed  time.Time // end of the last fetch, if it failed
	lastErr error
	flight  *fetch // the fetch under way, if any
}

// fetch is one fetch that every request needing it waits for.
type fetch struct {
	done chan struct{}
	err  error
}

// New returns a cache of the keys at url, fetched with hc (http.DefaultClient
// when nil) and again every refresh; what names the user in its logs.
func New(url string, hc *http.Client, refresh time.Duration, log *slog.Logger, what string) *Cache {
	if hc == nil {
		hc = http.DefaultClient
	}
	return &Cache{url: url, hc: hc, refresh: refresh, log: log, what: what}
}

// Key returns the signing key kid. It waits for a fetch when the keys are
// due for their refresh, or kid is unknown and the last fetch is at least
// minRefresh old; a fetch already under way is shared. ctx bounds only the
// wait, never the fetch.
func (b *Cache) Key(ctx context.Context, kid string) (*rsa.PublicKey, error) {
	if kid == "" {
		return nil, errors.New("token has no kid")
	}
	b.mu.Lock()
	k, known := b.keys[kid]
	due := b.fetched.IsZero() || time.Since(b.fetched) >= b.refresh
	f := b.flight
	if f == nil && b.mayFetch(known, due) {
		f = b.startFetch()
	}
	if f == nil || (known && !due) {
		err := b.lastErr
		b.mu.Unlock()
		return b.found(k, known, kid, err)
	}
	b.mu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	b.mu.Lock()
	// A failed refresh leaves the keys fetched before in place.
	k, known = b.keys[kid]
	b.mu.Unlock()
	return b.found(k, known, kid, f.err)
}

func (b *Cache) found(k *rsa.PublicKey, known bool, kid string, fetchErr error) (*rsa.PublicKey, error) {
	switch {
	case known:
		return k, nil
	case fetchErr != nil:
		return nil, fmt.Errorf("%w: %w", ErrKeysUnavailable, fetchErr)
	default:
		return nil, fmt.Errorf("unknown signing key %q", kid)
	}
}

// mayFetch says whether a new fetch may start; b.mu is held.
func (b *Cache) mayFetch(known, due bool) bool {
	switch {
	case !b.failed.IsZero() && time.Since(b.failed) < FailedBackoff:
		return false
	case due:
		return true
	default:
		return !known && time.Since(b.fetched) >= minRefresh
	}
}

// startFetch fetches the keys in the background; b.mu is held.
func (b *Cache) startFetch() *fetch {
	f := &fetch{done: make(chan struct{})}
	b.flight = f
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		defer cancel()
		keys, err := fetchJWKS(ctx, b.hc, b.url)
		if err == nil && len(keys) == 0 {
			err = errors.New("fetch jwks: no usable RS256 signing key")
		}
		if err != nil {
			b.log.Warn(b.what+": fetch signing keys", slog.String("url", b.url), slog.Any("err", err))
		}
		b.mu.Lock()
		if err != nil {
			b.failed = time.Now()
		} else {
			b.keys, b.fetched, b.failed = keys, time.Now(), time.Time{}
		}
		b.lastErr, b.flight, f.err = err, nil, err
		b.mu.Unlock()
		close(f.done)
	}()
	return f
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
