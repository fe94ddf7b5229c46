package cmkd

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// ErrInvalidKeyID is wrapped by every error of ParseKeyID and ParseVault.
var ErrInvalidKeyID = errors.New("invalid key id")

// KeyID names a Key Vault or Managed HSM key, and optionally one version of
// it. It is only made by ParseKeyID (or derived from one that was), so its
// fields are always canonical: two spellings of one key — a default port,
// a trailing slash, another case of host, name or version — parse to equal
// KeyIDs, and compare equal with ==.
type KeyID struct {
	// Vault is "https://host" or "https://host:port": lower-case, the
	// default port 443 dropped.
	Vault string
	// Name is the key's name, lower-cased: Key Vault compares names without
	// regard to case.
	Name string
	// Version is the key version, lower-cased; empty for a versionless id.
	Version string
}

const (
	maxKeyNameLen = 127
	maxVersionLen = 64
)

// ParseKeyID parses a versioned or versionless key URL such as
// "https://myvault.vault.azure.net/keys/tenant-a/0123456789abcdef0123456789abcdef".
// The URL decides where cmkd sends requests, so only https is accepted, and
// user info, queries and fragments are refused. Errors wrap ErrInvalidKeyID
// and say what is wrong.
func ParseKeyID(s string) (KeyID, error) {
	u, err := url.Parse(strings.TrimSpace(s))
	if err != nil {
		return KeyID{}, fmt.Errorf("%w %q: not a url", ErrInvalidKeyID, s)
	}
	vault, err := vaultOf(u)
	if err != nil {
		return KeyID{}, fmt.Errorf("%w %q: %s", ErrInvalidKeyID, s, err)
	}
	name, version, err := splitKeyPath(u.EscapedPath())
	if err != nil {
		return KeyID{}, fmt.Errorf("%w %q: %s", ErrInvalidKeyID, s, err)
	}
	return KeyID{Vault: vault, Name: name, Version: version}, nil
}

// MustParseKeyID is ParseKeyID for ids known to be valid (constants in
// tests and examples); it panics on an invalid one.
func MustParseKeyID(s string) KeyID {
	k, err := ParseKeyID(s)
	if err != nil {
		panic(err)
	}
	return k
}

// ParseVault returns the canonical vault URL ("https://host[:port]") of a
// vault URL, a bare host name, or any Key Vault object id.
func ParseVault(s string) (string, error) {
	s = strings.TrimSpace(s)
	if !strings.Contains(s, "://") {
		s = "https://" + s
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", fmt.Errorf("%w %q: not a url", ErrInvalidKeyID, s)
	}
	vault, err := vaultOf(u)
	if err != nil {
		return "", fmt.Errorf("%w %q: %s", ErrInvalidKeyID, s, err)
	}
	return vault, nil
}

// vaultOf checks everything but the path and returns the canonical vault.
func vaultOf(u *url.URL) (string, error) {
	switch {
	case !strings.EqualFold(u.Scheme, "https"):
		return "", errors.New("scheme must be https")
	case u.Opaque != "" || u.Host == "":
		return "", errors.New("no host")
	case u.User != nil:
		return "", errors.New("user info not allowed")
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "" || u.RawFragment != "":
		return "", errors.New("query or fragment not allowed")
	}
	host := strings.ToLower(u.Hostname())
	if host == "" || strings.ContainsAny(host, "%") {
		return "", errors.New("bad host")
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	port := u.Port()
	if port == "" && strings.HasSuffix(u.Host, ":") {
		return "", errors.New("empty port")
	}
	if port == "" || port == "443" {
		return "https://" + host, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 || port[0] == '0' {
		return "", errors.New("bad port")
	}
	return "https://" + host + ":" + port, nil
}

// splitKeyPath accepts "/keys/{name}" and "/keys/{name}/{version}", each
// with an optional trailing slash.
func splitKeyPath(p string) (name, version string, err error) {
	rest, ok := strings.CutPrefix(p, "/keys/")
	if !ok {
		return "", "", errors.New("path must be /keys/{name}[/{version}]")
	}
	parts := strings.Split(strings.TrimSuffix(rest, "/"), "/")
	if len(parts) > 2 {
		return "", "", errors.New("path must be /keys/{name}[/{version}]")
	}
	name = parts[0]
	if !validSegment(name, maxKeyNameLen, true) {
		return "", "", fmt.Errorf("key name must be 1-%d of [0-9A-Za-z-]", maxKeyNameLen)
	}
	if len(parts) == 2 {
		version = parts[1]
		if !validSegment(version, maxVersionLen, false) {
			return "", "", fmt.Errorf("key version must be 1-%d of [0-9A-Za-z]", maxVersionLen)
		}
	}
	return strings.ToLower(name), strings.ToLower(version), nil
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

// IsZero reports whether k is the zero KeyID (no key).
func (k KeyID) IsZero() bool { return k == KeyID{} }

// URL is the versionless key URL: Vault + "/keys/" + Name.
func (k KeyID) URL() string {
	if k.IsZero() {
		return ""
	}
	return k.Vault + "/keys/" + k.Name
}

// String is the versioned id when Version is set, else the versionless URL.
func (k KeyID) String() string {
	if k.Version == "" {
		return k.URL()
	}
	return k.URL() + "/" + k.Version
}

// Versionless is k without its version: the key rather than one version.
func (k KeyID) Versionless() KeyID {
	k.Version = ""
	return k
}

// At is version v of the key k names; v is lower-cased like a parsed one.
func (k KeyID) At(v string) KeyID {
	k.Version = strings.ToLower(v)
	return k
}

// Host is the vault's host[:port], without the scheme.
func (k KeyID) Host() string { return strings.TrimPrefix(k.Vault, "https://") }

// ManagedHSM reports whether the key lives in an Azure Managed HSM (its
// limits and algorithms differ from a vault's).
func (k KeyID) ManagedHSM() bool {
	h, _, _ := strings.Cut(k.Host(), ":")
	return strings.HasSuffix(h, ".managedhsm.azure.net")
}

// LeaseName names the lease that makes one writer per key across replicas:
// every spelling of a key, and every version of it, shares it.
func (k KeyID) LeaseName() string { return "key:" + k.URL() }

// MarshalText writes the canonical string, so a KeyID is a plain string in
// JSON and YAML.
func (k KeyID) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses like ParseKeyID; empty text is the zero KeyID.
func (k *KeyID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*k = KeyID{}
		return nil
	}
	id, err := ParseKeyID(string(b))
	if err != nil {
		return err
	}
	*k = id
	return nil
}
