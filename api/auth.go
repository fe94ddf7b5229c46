package api

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/golang-jwt/jwt/v5"
)

// errNoCredentials: the request carries neither a bearer token nor a
// verified client certificate.
var errNoCredentials = errors.New("no bearer token and no verified client certificate")

// caller is an authenticated caller.
type caller struct {
	// ids are the caller's identities, the first the one logged: a
	// token's azp (or appid) and oid, or a certificate's CN and URI SANs.
	ids   []string
	roles []string
}

func (c caller) primary() string {
	if len(c.ids) == 0 {
		return ""
	}
	return c.ids[0]
}

type authenticator struct {
	cfg    Auth
	bearer *bearerValidator
	admins map[string]bool
}

func newAuthenticator(cfg Config) *authenticator {
	a := &authenticator{cfg: cfg.Auth, admins: map[string]bool{}}
	if cfg.Auth.Entra != nil {
		a.bearer = newBearerValidator(*cfg.Auth.Entra, cfg.Logger)
	}
	for _, id := range cfg.Auth.Admins {
		a.admins[id] = true
	}
	return a
}

// authenticate identifies the caller by its bearer token if it sends one,
// else by its verified client certificate.
func (a *authenticator) authenticate(r *http.Request) (caller, error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return caller{}, errors.New("authorization is not a bearer token")
		}
		if a.bearer == nil {
			return caller{}, errors.New("bearer tokens are not accepted: auth.entra is not configured")
		}
		return a.bearer.validate(r.Context(), strings.TrimSpace(tok))
	}
	if r.TLS != nil && len(r.TLS.VerifiedChains) > 0 && len(r.TLS.VerifiedChains[0]) > 0 {
		return certCaller(r.TLS.VerifiedChains[0][0]), nil
	}
	return caller{}, errNoCredentials
}

// certCaller identifies a client certificate by its subject CN and URI SANs
// (e.g. a SPIFFE id).
func certCaller(cert *x509.Certificate) caller {
	var c caller
	if cert.Subject.CommonName != "" {
		c.ids = append(c.ids, cert.Subject.CommonName)
	}
	for _, u := range cert.URIs {
		c.ids = append(c.ids, u.String())
	}
	return c
}

// allowed says whether c may use a route: admin routes need the admin
// role, the others tenant in the allow-list of one of c's identities.
func (a *authenticator) allowed(c caller, admin bool, tenant string) bool {
	if slices.Contains(c.roles, a.cfg.AdminRole) {
		return true
	}
	for _, id := range c.ids {
		if a.admins[id] {
			return true
		}
	}
	if admin || tenant == "" {
		return false
	}
	for _, id := range c.ids {
		for _, t := range a.cfg.Tenants[id] {
			if t == "*" || t == tenant {
				return true
			}
		}
	}
	return false
}

// validate checks a token's signature, aud, iss, exp and nbf and returns
// its caller.
func (b *bearerValidator) validate(ctx context.Context, raw string) (caller, error) {
	claims := jwt.MapClaims{}
	_, err := b.parser.ParseWithClaims(raw, claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		return b.keys.Key(ctx, kid)
	})
	if err != nil {
		return caller{}, fmt.Errorf("bearer token: %w", err)
	}
	var c caller
	// v2 tokens name the client application in azp, v1 tokens in appid;
	// oid is the service principal (or user).
	for _, name := range []string{"azp", "appid", "oid"} {
		if v, _ := claims[name].(string); v != "" && !slices.Contains(c.ids, v) {
			c.ids = append(c.ids, v)
		}
	}
	if roles, ok := claims["roles"].([]any); ok {
		for _, r := range roles {
			if s, ok := r.(string); ok {
				c.roles = append(c.roles, s)
			}
		}
	}
	if len(c.ids) == 0 && len(c.roles) == 0 {
		return caller{}, errors.New("bearer token: no azp, appid, oid or roles claim")
	}
	return c, nil
}
