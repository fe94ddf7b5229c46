package kek

import (
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// KeyID names a Key Vault key, optionally one version of it.
type KeyID struct {
	Vault   string // "https://host[:port]", lower-case, no trailing slash, no ":443"
	Name    string
	Version string // empty for a versionless id
}

const (
	maxNameLen    = 127
	maxVersionLen = 64
)

// ParseKeyID parses a versioned or versionless key URL such as
// "https://myvault.vault.azure.net/keys/tenant-a/0123456789abcdef0123456789abcdef".
// Errors wrap ErrInvalidKeyID and say what is wrong.
func ParseKeyID(s string) (KeyID, error) {
	u, err := url.Parse(s)
	if err != nil {
		return KeyID{}, fmt.Errorf("%w: not a url", ErrInvalidKeyID)
	}
	vault, err := vaultOf(u)
	if err != nil {
		return KeyID{}, err
	}
	name, version, err := splitKeyPath(u.EscapedPath())
	if err != nil {
		return KeyID{}, err
	}
	return KeyID{Vault: vault, Name: name, Version: version}, nil
}

// vaultOf checks everything but the path and returns the normalised vault.
func vaultOf(u *url.URL) (string, error) {
	switch {
	case u.Scheme != "https":
		return "", fmt.Errorf("%w: scheme must be https", ErrInvalidKeyID)
	case u.Opaque != "" || u.Host == "":
		return "", fmt.Errorf("%w: no host", ErrInvalidKeyID)
	case u.User != nil:
		return "", fmt.Errorf("%w: user info not allowed", ErrInvalidKeyID)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "":
		return "", fmt.Errorf("%w: query or fragment not allowed", ErrInvalidKeyID)
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.ContainsAny(host, "%") {
		return "", fmt.Errorf("%w: bad host", ErrInvalidKeyID)
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if port == "" && strings.HasSuffix(u.Host, ":") {
		return "", fmt.Errorf("%w: empty port", ErrInvalidKeyID)
	}
	if port == "" || port == "443" {
		return "https://" + host, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '0' {
		return "", fmt.Errorf("%w: bad port", ErrInvalidKeyID)
	}
	return "https://" + host + ":" + port, nil
}

// splitKeyPath accepts "/keys/{name}", "/keys/{name}/{version}", each with an
// optional trailing slash.
func splitKeyPath(p string) (name, version string, err error) {
	rest, ok := strings.CutPrefix(p, "/keys/")
	if !ok {
		return "", "", fmt.Errorf("%w: path must start with /keys/", ErrInvalidKeyID)
	}
	rest = strings.TrimSuffix(rest, "/")
	parts := strings.Split(rest, "/")
	if len(parts) > 2 {
		return "", "", fmt.Errorf("%w: too many path segments", ErrInvalidKeyID)
	}
	name = parts[0]
	if !validSegment(name, maxNameLen, true) {
		return "", "", fmt.Errorf("%w: name must be 1-%d of [0-9A-Za-z-]", ErrInvalidKeyID, maxNameLen)
	}
	if len(parts) == 2 {
		version = parts[1]
		if !validSegment(version, maxVersionLen, false) {
			return "", "", fmt.Errorf("%w: version must be 1-%d of [0-9A-Za-z]", ErrInvalidKeyID, maxVersionLen)
		}
	}
	return name, version, nil
}

func validSegment(s string, maxLen int, dash bool) bool {
	if len(s) == 0 || len(s) > maxLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || dash && c == '-'
		if !ok {
			return false
		}
	}
	return true
}

// KeyURL is the versionless id: Vault + "/keys/" + Name.
func (k KeyID) KeyURL() string { return k.Vault + "/keys/" + k.Name }

// String is the versioned id when Version is set, else the versionless one.
func (k KeyID) String() string {
	if k.Version == "" {
		return k.KeyURL()
	}
	return k.KeyURL() + "/" + k.Version
}

// normVault normalises a vault URL or host for map lookups; it falls back to
// the lower-cased input when it does not parse.
func normVault(v string) string {
	if !strings.Contains(v, "://") {
		v = "https://" + v
	}
	u, err := url.Parse(v)
	if err == nil {
		if n, err := vaultOf(&url.URL{Scheme: u.Scheme, Host: u.Host}); err == nil {
			return n
		}
	}
	return strings.ToLower(strings.TrimSuffix(v, "/"))
}
