package kek

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
)

// VersionInfo describes one version of a key.
type VersionInfo struct {
	Version                     string
	Enabled                     bool
	Created, NotBefore, Expires time.Time
}

// Versions lists every version of a key, newest Created first. Paging is
// followed; a transient failure on any page restarts the listing, because
// the SDK's pager cannot resume after an error.
func (c *Client) Versions(ctx context.Context, id cmkd.KeyID) ([]VersionInfo, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	v, err := c.vault(id.Vault)
	if err != nil {
		return nil, fmt.Errorf("versions %s: %w", id.URL(), err)
	}
	var out []VersionInfo
	err = c.do(ctx, func(ctx context.Context) error {
		var err error
		out, err = c.listVersions(ctx, v, id.Name)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("versions %s: %w", id.URL(), err)
	}
	slices.SortStableFunc(out, func(a, b VersionInfo) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return cmp.Compare(b.Version, a.Version)
	})
	return out, nil
}

func (c *Client) listVersions(ctx context.Context, v *vault, name string) ([]VersionInfo, error) {
	var out []VersionInfo
	pager := v.kv.NewListKeyPropertiesVersionsPager(name, nil)
	for pager.More() {
		var page azkeys.ListKeyPropertiesVersionsResponse
		err := c.call(ctx, v, "listVersions", func(ctx context.Context) error {
			var err error
			page, err = pager.NextPage(ctx)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, p := range page.Value {
			if p != nil && p.KID != nil {
				out = append(out, versionInfo(p))
			}
		}
	}
	return out, nil
}

func versionInfo(p *azkeys.KeyProperties) VersionInfo {
	vi := VersionInfo{Version: strings.ToLower(p.KID.Version())}
	if a := p.Attributes; a != nil {
		vi.Enabled = a.Enabled != nil && *a.Enabled
		vi.Created = timeOf(a.Created)
		vi.NotBefore = timeOf(a.NotBefore)
		vi.Expires = timeOf(a.Expires)
	}
	return vi
}
