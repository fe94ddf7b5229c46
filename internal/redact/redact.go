// Package redact removes credentials from text before it reaches an error
// message or a log: the user info of URLs (nats://user:password@host,
// postgres://user:password@host, nats://token@host) and the values of
// parameters that carry secrets (password=, token=, a webhook's code=, a
// SAS sig=, ...) in URL queries and key/value connection strings.
//
// It errs on the side of removing too much: text that merely looks like
// user info (an e-mail address) loses its local part too.
package redact

import (
	"net/url"
	"strings"
)

// Mark replaces every credential removed.
const Mark = "REDACTED"

// secretParams are parameter names whose values are credentials, compared
// without regard to case or percent-encoding.
var secretParams = map[string]bool{
	"password": true, "passwd": true, "pwd": true, "pass": true, "sslpassword": true,
	"token": true, "access_token": true, "refresh_token": true, "id_token": true, "auth_token": true,
	"secret": true, "client_secret": true, "shared_secret": true,
	"code": true,                    // Event Grid and Azure Functions webhook keys
	"sig":  true, "signature": true, // shared access signatures
	"apikey": true, "api_key": true, "sharedaccesskey": true, "accesskey": true, "access_key": true,
}

// mode says what surrounds a credential, and so where it ends.
type mode int

const (
	// text is free text: a URL in it ends at white space or a quote, or,
	// when quoted, at its closing quote.
	text mode = iota
	// whole is one URL or list of URLs: all of the string belongs to it.
	whole
	// keyValue is a libpq-style "key=value key='quoted value'" string.
	keyValue
)

// URL returns the connection string s — a URL, a comma-separated list of
// URLs with or without scheme (NATS), or a key/value connection string
// (PostgreSQL's "host=h password=secret") — with its credentials replaced
// by Mark. All of s is taken to be the connection string, so a malformed
// one (a password with a blank) is covered too.
func URL(s string) string {
	if isKeyValue(s) {
		return params(s, keyValue)
	}
	return params(userinfo(s, whole), whole)
}

// isKeyValue reports whether s starts as a key/value connection string
// does, with "name=": a URL starts with its scheme, a bare host or user
// info has no '=' before its first ':' or '@'. A quoted value may hold
// anything, "://" included.
func isKeyValue(s string) bool {
	i := skipBlanks(s, 0)
	j := i
	for j < len(s) && isNameChar(s[j]) {
		j++
	}
	k := skipBlanks(s, j)
	return j > i && k < len(s) && s[k] == '='
}

// Text returns free text, such as an error message that quotes a URL,
// with the credentials of every URL and connection string in it replaced
// by Mark.
func Text(s string) string {
	return params(userinfo(s, text), text)
}

// Error returns err with its message passed through Text; errors.Is and
// errors.As still reach err. It returns nil for nil.
func Error(err error) error {
	if err == nil {
		return nil
	}
	msg := Text(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redacted{msg: msg, err: err}
}

type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// span is s[start:end], to be replaced by Mark.
type span struct{ start, end int }

func replace(s string, spans []span) string {
	if len(spans) == 0 {
		return s
	}
	var b strings.Builder
	last := 0
	for _, sp := range spans {
		if sp.start < last { // overlaps the previous span: extend it
			if sp.end > last {
				last = sp.end
			}
			continue
		}
		b.WriteString(s[last:sp.start])
		b.WriteString(Mark)
		last = sp.end
	}
	b.WriteString(s[last:])
	return b.String()
}

// userinfo redacts what precedes an '@' in a URL or a bare host: from
// after "://" (or the start of the token) up to the last '@' of the
// URL's extent, as url.Parse takes the last '@' to end the user info.
func userinfo(s string, m mode) string {
	if !strings.Contains(s, "@") {
		return s
	}
	var spans []span
	add := func(start, end int) {
		if at := strings.LastIndexByte(s[start:end], '@'); at >= 0 {
			at += start
			if i := strings.Index(s[start:at], "://"); i >= 0 {
				start += i + 3
			}
			if start < at && s[start:at] != Mark {
				spans = append(spans, span{start, at})
			}
		}
	}
	if m == whole {
		add(0, len(s))
		return replace(s, spans)
	}
	for p := 0; p < len(s); {
		if isSpace(s[p]) || isQuote(s[p]) || !tokenStart(s, p) {
			p++
			continue
		}
		end := tokenEnd(s, p)
		add(p, end)
		p = max(end, p+1)
	}
	return replace(s, spans)
}

// tokenStart reports whether a URL or bare user@host could start at p.
func tokenStart(s string, p int) bool {
	if p == 0 {
		return true
	}
	c := s[p-1]
	return isSpace(c) || isQuote(c) || strings.IndexByte("=(<[", c) >= 0
}

// tokenEnd is where the token starting at p ends: its closing quote when
// a quote opened it, else the first blank or quote.
func tokenEnd(s string, p int) int {
	if q := p - 1; q >= 0 && isQuote(s[q]) && (q == 0 || isSpace(s[q-1]) || strings.IndexByte("=(<[", s[q-1]) >= 0) {
		for i := p; i < len(s); i++ {
			switch {
			case s[i] == '\\' && s[q] == '"': // Go's %q escapes
				i++
			case s[i] == s[q]:
				return i
			}
		}
		return len(s)
	}
	for i := p; i < len(s); i++ {
		if isSpace(s[i]) || isQuote(s[i]) {
			return i
		}
	}
	return len(s)
}

// params redacts the values of secret parameters: name=value where name
// starts s, a query (?, &, ;) or a blank-separated pair, blanks around '='
// allowed as libpq allows them.
func params(s string, m mode) string {
	if !strings.Contains(s, "=") {
		return s
	}
	var spans []span
	for i := 0; i < len(s); {
		if !nameStart(s, i) || !isNameChar(s[i]) {
			i++
			continue
		}
		j := i
		for j < len(s) && isNameChar(s[j]) {
			j++
		}
		k := skipBlanks(s, j)
		if k >= len(s) || s[k] != '=' || !secretName(s[i:j]) {
			i = j
			continue
		}
		v := skipBlanks(s, k+1)
		end := valueEnd(s, v, m)
		if end > v && s[v:end] != Mark {
			spans = append(spans, span{v, end})
		}
		i = max(end, k+1)
	}
	return replace(s, spans)
}

func nameStart(s string, i int) bool {
	if i == 0 {
		return true
	}
	c := s[i-1]
	return isSpace(c) || isQuote(c) || strings.IndexByte("?&;,({[", c) >= 0
}

func isNameChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("_.-%", c) >= 0
}

func secretName(name string) bool {
	if n, err := url.QueryUnescape(name); err == nil {
		name = n
	}
	return secretParams[strings.ToLower(name)]
}

// valueEnd is where the value starting at v ends. In a key/value string
// (and in text) a value may be single-quoted with backslash escapes, as
// libpq reads it; the quotes are redacted with it, and so is anything
// stuck to the closing quote.
func valueEnd(s string, v int, m mode) int {
	i := v
	if i < len(s) && s[i] == '\'' && m != whole {
		for i++; i < len(s) && s[i] != '\''; i++ {
			if s[i] == '\\' {
				i++
			}
		}
		i++
	}
	for ; i < len(s); i++ {
		c := s[i]
		switch m {
		case whole:
			if c == '&' {
				return i
			}
		case keyValue:
			if isSpace(c) {
				return i
			}
		default:
			if c == '\\' && i+1 < len(s) { // an escape inside a quoted string
				i++
				continue
			}
			if isSpace(c) || isQuote(c) || strings.IndexByte("&#)]},", c) >= 0 {
				return i
			}
		}
	}
	return len(s)
}

func skipBlanks(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isQuote(c byte) bool { return c == '"' || c == '\'' || c == '`' }
