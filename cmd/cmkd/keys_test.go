package main

import (
	"strings"
	"testing"
)

// TestCLIKeys: cmkd keys lists every key in use with its tenants; once the
// key has been checked (here by a rewrap) its state, last probe, interval
// and rewrap progress; a sealed tenant is counted apart.
func TestCLIKeys(t *testing.T) {
	e := newCLIEnv(t, false)
	_, v2 := rotated(t, e)
	var rows []keyRow
	e.mustJSON(&rows, "keys")
	if len(rows) != 1 || rows[0].Key.String() != e.keyURL("cmk") || rows[0].TenantsActive != 2 || rows[0].State != "unchecked" {
		t.Fatalf("keys before any check: %+v", rows)
	}
	e.must("rewrap", "--key", e.keyURL("cmk"))
	e.mustJSON(&rows, "keys")
	r := rows[0]
	if r.State != "usable" || r.LastProbe == nil || r.LastProbeAgeSec == nil || *r.LastProbeAgeSec < 0 || r.IntervalSec <= 0 ||
		r.Rewrap == nil || r.Rewrap.Target != v2 || r.Rewrap.Done != 2 || r.Rewrap.Total != 2 || r.Rewrap.Running {
		t.Fatalf("keys after a rewrap: %+v (rewrap %+v)", r, r.Rewrap)
	}
	e.must("vault", "disable", "cmk")
	e.must("vault", "disable", "cmk", "--version", v2)
	e.wantExit(exitOK, "rewrap", "--key", e.keyURL("cmk"))
	text := e.must("keys")
	for _, want := range []string{e.keyURL("cmk"), "0 (+2 sealed)", "disabled", "ago", "2/2 to " + v2} {
		if !strings.Contains(text, want) {
			t.Errorf("cmkd keys lacks %q:\n%s", want, text)
		}
	}
}
