package events

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// ErrBadKeyURL is wrapped by NormalizeKeyURL's errors. It also wraps
// ErrMalformed: an event naming a bad key URL can never be handled.
var ErrBadKeyURL = fmt.Errorf("%w: bad key url", ErrMalformed)

var (
	// Key Vault object names: 1-127 letters, digits and dashes.
	keyNameRE = regexp.MustCompile(`^[0-9A-Za-z-]{1,127}$`)
	// Versions are 32 hex digits in Azure; emulators may use other
	// alphanumerics, so only the character set is checked.
	keyVersionRE = regexp.MustCompile(`^[0-9A-Za-z]{1,64}$`)
)

// NormalizeKeyURL parses a Key Vault or Managed HSM key id such as
// "https://myvault.vault.azure.net/keys/name/version" (version optional) and
// returns the versionless key URL, the vault URL and the version. Scheme and
// host are lower-cased, the default port dropped; the key name keeps its
// case (Key Vault compares names case-insensitively, callers comparing key
// URLs should too). Only https is accepted: a key URL decides where cmkd
// sends requests.
func NormalizeKeyURL(id string) (keyURL, vault, version string, err error) {
	u, vault, err := parseVaultURL(id)
	if err != nil {
		return "", "", "", err
	}
	segs := strings.Split(strings.TrimSuffix(strings.TrimPrefix(u.EscapedPath(), "/"), "/"), "/")
	if len(segs) < 2 || len(segs) > 3 || segs[0] != "keys" {
		return "", "", "", fmt.Errorf("%w %q: path is not /keys/{name}[/{version}]", ErrBadKeyURL, id)
	}
	if !keyNameRE.MatchString(segs[1]) {
		return "", "", "", fmt.Errorf("%w %q: bad key name", ErrBadKeyURL, id)
	}
	if len(segs) == 3 {
		version = segs[2]
		if !keyVersionRE.MatchString(version) {
			return "", "", "", fmt.Errorf("%w %q: bad key version", ErrBadKeyURL, id)
		}
	}
	return vault + "/keys/" + segs[1], vault, version, nil
}

// normalizeVaultURL returns the vault URL ("https://host[:port]") of any
// Key Vault object id or vault URL.
func normalizeVaultURL(id string) (string, error) {
	_, vault, err := parseVaultURL(id)
	return vault, err
}

func parseVaultURL(id string) (*url.URL, string, error) {
	id = strings.TrimSpace(id)
	u, err := url.Parse(id)
	if err != nil {
		return nil, "", fmt.Errorf("%w %q: %v", ErrBadKeyURL, id, errors.Unwrap(err))
	}
	switch {
	case !strings.EqualFold(u.Scheme, "https"):
		return nil, "", fmt.Errorf("%w %q: scheme is not https", ErrBadKeyURL, id)
	case u.User != nil:
		return nil, "", fmt.Errorf("%w %q: has user info", ErrBadKeyURL, id)
	case u.Hostname() == "":
		return nil, "", fmt.Errorf("%w %q: no host", ErrBadKeyURL, id)
	case u.RawQuery != "" || u.Fragment != "" || u.ForceQuery:
		return nil, "", fmt.Errorf("%w %q: has a query or fragment", ErrBadKeyURL, id)
	}
	return u, "https://" + normalizeHost(u.Host), nil
}

// normalizeHost lower-cases a host[:port] and drops the default https port.
func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ":443")
}

// vaultHost returns the host[:port] of a normalised vault URL.
func vaultHost(vault string) string {
	return strings.TrimPrefix(vault, "https://")
}

// allowList holds normalised vault hosts; empty allows every vault.
type allowList map[string]bool

func newAllowList(entries []string) allowList {
	a := allowList{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if i := strings.Index(e, "://"); i >= 0 {
			e = e[i+3:]
		}
		e, _, _ = strings.Cut(e, "/")
		a[normalizeHost(e)] = true
	}
	return a
}

func (a allowList) allows(vault string) bool {
	return len(a) == 0 || a[vaultHost(vault)]
}
