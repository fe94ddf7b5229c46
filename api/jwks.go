package api

import (
	"log/slog"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cmkd-io/cmkd/internal/jwks"
)

var errKeysUnavailable = jwks.ErrKeysUnavailable

// bearerValidator validates RS256 tokens against the issuer's signing
// keys, cached and fetched again every RefreshInterval.
type bearerValidator struct {
	parser *jwt.Parser
	keys   *jwks.Cache
}

func newBearerValidator(cfg Entra, log *slog.Logger) *bearerValidator {
	b := &bearerValidator{
		keys:   jwks.New(cfg.JWKSURL, cfg.HTTPClient, cfg.RefreshInterval, log, "api"),
		parser: jwks.Parser(cfg.Issuer, cfg.Audience, cfg.Skew),
	}
	return b
}
