package webhook

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmkd-io/cmkd/internal/jwks"
)

// errKeysUnavailable means a token could not be checked because the
// signing keys could not be fetched: a retry may succeed.
var errKeysUnavailable = jwks.ErrKeysUnavailable

// failedBackoff is how long a delivery refused for want of keys is told
// to wait (Retry-After).
const failedBackoff = jwks.FailedBackoff

// bearerValidator validates RS256 tokens against the issuer's signing
// keys, cached and fetched again every RefreshInterval.
type bearerValidator struct {
	parser *jwt.Parser
	apps   map[string]bool
	keys   *jwks.Cache
}

func newBearerValidator(cfg EntraAuth, log *slog.Logger) *bearerValidator {
	b := &bearerValidator{
		keys:   jwks.New(cfg.JWKSURL, cfg.HTTPClient, cfg.RefreshInterval, log, "webhook"),
		parser: jwks.Parser(cfg.Issuer, cfg.Audience, cfg.Skew),
	}
	if len(cfg.AllowedApplications) > 0 {
		b.apps = map[string]bool{}
		for _, app := range cfg.AllowedApplications {
			b.apps[strings.ToLower(strings.TrimSpace(app))] = true
		}
	}
	return b
}

// validate checks signature, aud, iss, exp, nbf and, when
// AllowedApplications is set, the application the token was issued to.
func (b *bearerValidator) validate(ctx context.Context, raw string) error {
	claims := jwt.MapClaims{}
	_, err := b.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return b.keys.Key(ctx, kid)
	})
	if err != nil {
		return fmt.Errorf("bearer token: %w", err)
	}
	if b.apps != nil {
		// v1 tokens name the client application in appid, v2 tokens in azp.
		app, _ := claims["appid"].(string)
		if app == "" {
			app, _ = claims["azp"].(string)
		}
		if !b.apps[strings.ToLower(app)] {
			return fmt.Errorf("bearer token: application %q not allowed", app)
		}
	}
	return nil
}
