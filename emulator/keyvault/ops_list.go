package keyvault

import (
	"strconv"
	"strings"
)

// maxPageSize is Key Vault's largest (and default) list page.
const maxPageSize = 25

func (s *Server) listKeys(c *call) (any, error) {
	s.vault.mu.Lock()
	var items []keyItem
	for _, k := range sortedKeys(s.vault.keys) {
		items = append(items, c.vw.item(k))
	}
	s.vault.mu.Unlock()
	return page(c, "/keys", items)
}

func (s *Server) listVersions(c *call) (any, error) {
	s.vault.mu.Lock()
	k, _, err := s.vault.find(c.name, "")
	var items []keyItem
	if err == nil {
		for _, v := range k.sortedVersions() {
			items = append(items, c.vw.versionItem(k, v))
		}
	}
	s.vault.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return page(c, "/keys/"+k.name+"/versions", items)
}

func (s *Server) listDeletedKeys(c *call) (any, error) {
	s.vault.mu.Lock()
	var items []keyItem
	for _, k := range sortedKeys(s.vault.deleted) {
		items = append(items, c.vw.deletedItem(k))
	}
	s.vault.mu.Unlock()
	return page(c, "/deletedkeys", items)
}

// page cuts one page out of items. The skip token is the offset; the
// nextLink is absolute and carries api-version and maxresults, as the
// service's does, because azkeys follows it verbatim.
func page(c *call, path string, items []keyItem) (any, error) {
	q := c.r.URL.Query()
	size := maxPageSize
	if m := q.Get("maxresults"); m != "" {
		n, err := strconv.Atoi(m)
		if err != nil || n < 1 || n > maxPageSize {
			return nil, badParameter("The value of parameter maxresults (%s) is invalid. It must be between 1 and %d.", m, maxPageSize)
		}
		size = n
	}
	off := 0
	if t := q.Get("$skiptoken"); t != "" {
		n, err := strconv.Atoi(t)
		if err != nil || n < 0 {
			return nil, badParameter("The value of parameter $skiptoken is invalid.")
		}
		off = n
	}
	off = min(off, len(items))
	end := min(off+size, len(items))
	p := listPage{Value: append([]keyItem{}, items[off:end]...)}
	if end < len(items) {
		var b strings.Builder
		b.WriteString(c.vw.base + path + "?api-version=" + c.vw.api + "&$skiptoken=" + strconv.Itoa(end))
		if q.Get("maxresults") != "" {
			b.WriteString("&maxresults=" + strconv.Itoa(size))
		}
		link := b.String()
		p.NextLink = &link
	}
	return p, nil
}
