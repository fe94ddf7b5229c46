package kek

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/cmkd-io/cmkd"
)

// DefaultDNSSuffixes are the host suffixes of Azure Key Vault and Managed
// HSM in Azure's public cloud: what VaultPolicy allows when it lists
// neither vaults nor suffixes.
var DefaultDNSSuffixes = []string{".vault.azure.net", ".managedhsm.azure.net"}

// VaultPolicy decides which vaults a Client may call. A key URL decides
// where cmkd connects, and a tenant's key URL may come from a customer:
// without a policy it could point cmkd at any host and port.
//
// With Vaults set, exactly those vaults are allowed. Without, a vault is
// allowed when its host ends in one of DNSSuffixes and it is on port 443,
// or, with AllowLoopback, when it is on a loopback address (any port). A
// call to any other vault fails with ErrVaultNotAllowed before any
// network I/O, DNS included.
type VaultPolicy struct {
	// Vaults, when not empty, are the only vaults allowed, as vault URLs
	// ("https://myvault.vault.azure.net") or host names.
	Vaults []string
	// DNSSuffixes are the allowed host suffixes when Vaults is empty;
	// empty takes DefaultDNSSuffixes. A deployment in a sovereign cloud
	// lists its own, e.g. ".vault.azure.cn", ".vault.usgovcloudapi.net"
	// or ".managedhsm.usgovcloudapi.net". Each starts with a dot and names
	// at least two labels, so that no suffix allows a whole top-level domain.
	DNSSuffixes []string
	// AllowLoopback allows vaults on loopback addresses (127.0.0.0/8, ::1,
	// localhost), where the emulator runs, when Vaults is empty. For
	// development and tests only.
	AllowLoopback bool
}

// Validate reports the first entry that is unusable.
func (p VaultPolicy) Validate() error {
	for _, v := range p.Vaults {
		if _, err := cmkd.ParseVault(v); err != nil {
			return fmt.Errorf("kek vault policy: Vaults entry %q: %w", v, err)
		}
	}
	for _, s := range p.DNSSuffixes {
		if err := checkSuffix(s); err != nil {
			return fmt.Errorf("kek vault policy: DNSSuffixes entry %q: %w", s, err)
		}
	}
	return nil
}

func checkSuffix(s string) error {
	labels := strings.Split(strings.TrimPrefix(s, "."), ".")
	switch {
	case !strings.HasPrefix(s, "."):
		return errors.New("must start with a dot, like .vault.azure.net")
	case len(labels) < 2:
		return errors.New("must name at least two labels, like .vault.azure.cn")
	}
	for _, l := range labels {
		if l == "" || len(l) > 63 || strings.Trim(strings.ToLower(l), "abcdefghijklmnopqrstuvwxyz0123456789-") != "" {
			return errors.New("is not a DNS name")
		}
	}
	return nil
}

// VaultNotAllowedError is a vault the policy refused: which, why, and the
// VaultPolicy field that would allow it. It matches ErrVaultNotAllowed.
type VaultNotAllowedError struct {
	Vault  string // canonical vault URL
	Reason string
	// Field is the VaultPolicy field to change to allow the vault:
	// "Vaults", "DNSSuffixes" or "AllowLoopback".
	Field string
}

func (e *VaultNotAllowedError) Error() string {
	return fmt.Sprintf("vault %s not allowed: %s", e.Vault, e.Reason)
}

// Unwrap makes errors.Is(err, ErrVaultNotAllowed) true.
func (e *VaultNotAllowedError) Unwrap() error { return ErrVaultNotAllowed }

// vaultPolicy is a VaultPolicy ready to check canonical vault URLs.
type vaultPolicy struct {
	vaults   map[string]bool
	suffixes []string
	loopback bool
}

func newVaultPolicy(p VaultPolicy) vaultPolicy {
	vp := vaultPolicy{loopback: p.AllowLoopback}
	if len(p.Vaults) > 0 {
		vp.vaults = map[string]bool{}
		for _, v := range p.Vaults {
			if u, err := cmkd.ParseVault(v); err == nil {
				vp.vaults[u] = true
			}
		}
	}
	suffixes := p.DNSSuffixes
	if len(suffixes) == 0 {
		suffixes = DefaultDNSSuffixes
	}
	for _, s := range suffixes {
		vp.suffixes = append(vp.suffixes, strings.ToLower(s))
	}
	return vp
}

// check returns nil for an allowed vault (a canonical vault URL, as
// cmkd.KeyID.Vault holds) and a *VaultNotAllowedError otherwise.
func (p vaultPolicy) check(vault string) error {
	refuse := func(field, format string, a ...any) error {
		return &VaultNotAllowedError{Vault: vault, Reason: fmt.Sprintf(format, a...), Field: field}
	}
	if p.vaults != nil {
		if p.vaults[vault] {
			return nil
		}
		return refuse("Vaults", "not in the vault allow-list")
	}
	u, err := url.Parse(vault)
	if err != nil || u.Hostname() == "" {
		return refuse("Vaults", "not a vault URL")
	}
	host, port := u.Hostname(), u.Port()
	if isLoopback(host) {
		if p.loopback {
			return nil
		}
		return refuse("AllowLoopback", "%s is a loopback address, allowed for development only", host)
	}
	if !slices.ContainsFunc(p.suffixes, func(s string) bool { return len(host) > len(s) && strings.HasSuffix(host, s) }) {
		return refuse("DNSSuffixes", "host %s is not under a Key Vault DNS suffix (%s)", host, strings.Join(p.suffixes, ", "))
	}
	if port != "" && port != "443" {
		return refuse("Vaults", "Key Vault answers on port 443, not %s", port)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
