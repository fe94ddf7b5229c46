package eventgridtopic

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// sasTimeLayouts are the expiry forms accepted in a SAS token: RFC 3339, as
// the azeventgrid tests write it, and .NET's invariant culture, as Azure's
// documentation samples write it.
var sasTimeLayouts = []string{time.RFC3339Nano, "1/2/2006 3:04:05 PM"}

func unauthorized(msg string) *wireError {
	return &wireError{http.StatusUnauthorized, codeUnauthorized, msg}
}

// authorize accepts the three ways azeventgrid authenticates.
func (s *Server) authorize(r *http.Request, now time.Time) *wireError {
	if s.cfg.Key == "" && !s.cfg.AcceptBearer {
		return nil
	}
	if key := r.Header.Get("aeg-sas-key"); key != "" {
		if s.cfg.Key != "" && subtle.ConstantTimeCompare([]byte(key), []byte(s.cfg.Key)) == 1 {
			return nil
		}
		return unauthorized("The request authorization key is not authorized for " + s.cfg.Name)
	}
	if tok := r.Header.Get("aeg-sas-token"); tok != "" {
		if s.cfg.Key == "" {
			return unauthorized("The topic accepts no SAS tokens")
		}
		return s.checkSAS(tok, now)
	}
	if h := r.Header.Get("Authorization"); h != "" {
		tok, ok := strings.CutPrefix(h, "Bearer ")
		if !ok || !s.cfg.AcceptBearer {
			return unauthorized("The Authorization header is not accepted by this topic")
		}
		if tok == "" || strings.ContainsAny(tok, " \t") {
			return unauthorized("The bearer token is malformed")
		}
		return nil
	}
	return unauthorized("The request has no aeg-sas-key, aeg-sas-token or Authorization header")
}

// checkSAS verifies "r=<resource>&e=<expiry>&s=<signature>": the signature
// is base64 HMAC-SHA256, with the decoded key, of the text before "&s=".
func (s *Server) checkSAS(tok string, now time.Time) *wireError {
	i := strings.LastIndex(tok, "&s=")
	if i < 0 {
		return unauthorized("The SAS token is malformed")
	}
	signed, sigText := tok[:i], tok[i+len("&s="):]
	q, err := url.ParseQuery(signed)
	sig, err2 := url.QueryUnescape(sigText)
	if err != nil || err2 != nil || q.Get("r") == "" || q.Get("e") == "" {
		return unauthorized("The SAS token is malformed")
	}
	mac := hmac.New(sha256.New, s.sasKey)
	mac.Write([]byte(signed))
	want := base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return unauthorized("The SAS token signature is not valid for " + s.cfg.Name)
	}
	var exp time.Time
	for _, layout := range sasTimeLayouts {
		if exp, err = time.Parse(layout, q.Get("e")); err == nil {
			break
		}
	}
	if err != nil {
		return unauthorized("The SAS token expiry is malformed")
	}
	if !exp.After(now) {
		return unauthorized("The SAS token has expired")
	}
	if !s.sasResourceOK(q.Get("r")) {
		return unauthorized("The SAS token resource " + q.Get("r") + " is not this topic")
	}
	return nil
}

// sasResourceOK accepts the endpoint with or without /api/events and a
// query, in any case, as the service matches the resource by prefix.
func (s *Server) sasResourceOK(resource string) bool {
	resource, _, _ = strings.Cut(resource, "?")
	resource = strings.TrimSuffix(strings.ToLower(resource), "/")
	base := strings.ToLower("https://" + s.ln.Addr().String())
	return resource == base || resource == base+apiPath
}

// decodeKey is the HMAC key for SAS tokens: the base64-decoded topic key, or
// its raw bytes when it is not base64.
func decodeKey(key string) []byte {
	if b, err := base64.StdEncoding.DecodeString(key); err == nil && len(b) > 0 {
		return b
	}
	return []byte(key)
}
