package storetest

import (
	"path/filepath"
	"testing"

	"github.com/cmkd-io/cmkd/store"
)

// Opener opens (creating if needed) the backend's database at path. Called
// twice with one path it must give two independent handles on one database,
// as two processes would have; called after the first handle is closed it
// must find the data written before (a restart). The suite closes what it
// opens.
type Opener func(t *testing.T, path string) store.Backend

// Run runs the conformance suite against the backend open makes. Each case
// gets its own Key Vault emulator and database path.
func Run(t *testing.T, open Opener) {
	for _, c := range cases() {
		t.Run(c.name, func(t *testing.T) { c.fn(t, newFixture(t, open)) })
	}
}

type testCase struct {
	name string
	fn   func(*testing.T, *fixture)
}

func cases() []testCase {
	var all []testCase
	for _, group := range [][]testCase{
		tenantCases, dekCases, rewrapCases, recordCases, cacheCases,
		sealCases, outboxCases, outboxSinkCases, leaseCases, leakCases, keyCases, layerCases,
		envelopeCases, destroyCases,
	} {
		all = append(all, group...)
	}
	return all
}

// fixture is one case's world: a harness, a database path and the first
// store on it.
type fixture struct {
	*Harness
	t    *testing.T
	open Opener
	path string
}

func newFixture(t *testing.T, open Opener) *fixture {
	return &fixture{Harness: NewHarness(t), t: t, open: open, path: filepath.Join(t.TempDir(), "cmkd.db")}
}

// store opens another handle on the case's database and a Store over it:
// another process, as far as the database is concerned, with its own cache.
func (f *fixture) store(tune func(*store.Config)) *store.Store {
	f.t.Helper()
	return f.NewStore(f.t, f.open(f.t, f.path), tune)
}
