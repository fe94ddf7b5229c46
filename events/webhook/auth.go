package webhook

import (
	"crypto/subtle"
	"errors"
	"log/slog"
	"net/http"
	"strings"
)

// errUnauthorized is what every authentication failure looks like to the
// caller: which check failed is logged, not answered.
var errUnauthorized = errors.New("unauthorized")

type authenticator struct {
	secret, header string
	bearer         *bearerValidator
}

func newAuthenticator(a Auth, log *slog.Logger) *authenticator {
	au := &authenticator{secret: a.SharedSecret, header: a.SecretHeader}
	if a.Entra != nil {
		au.bearer = newBearerValidator(*a.Entra, log)
	}
	return au
}

// check accepts a request that passes either configured method. An error
// wrapping errKeysUnavailable means the token could not be checked yet.
func (a *authenticator) check(r *http.Request) error {
	if a.secret != "" && (equal(r.Header.Get(a.header), a.secret) || equal(r.URL.Query().Get(SecretQueryParam), a.secret)) {
		return nil
	}
	if a.bearer != nil {
		tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok {
			return errors.New("no bearer token")
		}
		return a.bearer.validate(r.Context(), strings.TrimSpace(tok))
	}
	return errors.New("no valid shared secret")
}

// equal compares in constant time so the secret cannot be guessed byte by
// byte from response times.
func equal(got, want string) bool {
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}
