package events

import (
	"strings"

	"github.com/cmkd-io/cmkd"
)

// allowList holds canonical vault URLs; empty allows every vault.
type allowList map[string]bool

// newAllowList reads vault URLs or host names; an entry that is not one is
// kept as written, so it matches nothing rather than everything.
func newAllowList(entries []string) allowList {
	a := allowList{}
	for _, e := range entries {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if v, err := cmkd.ParseVault(e); err == nil {
			e = v
		}
		a[e] = true
	}
	return a
}

func (a allowList) allows(vault string) bool {
	return len(a) == 0 || a[vault]
}
