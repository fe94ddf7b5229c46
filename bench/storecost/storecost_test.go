package storecost

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/bench/benchtest"
)

// The smoke run proves the harness still reads and writes through both
// sides of every backend and produces every ratio and goal; the numbers
// themselves come from `make bench`. A PostgreSQL server that does not
// answer skips that backend, visibly; where PostgreSQL is required the
// skip fails the test.
func TestSmoke(t *testing.T) {
	r := benchtest.Run(t, Scenario)
	ran := 0
	for _, en := range engines {
		if skipped(r, en.name) != "" {
			continue
		}
		ran++
		p := en.name + ": "
		// Encryption cannot make a read or a write cheaper than the plain
		// table's, and at smoke sizes on a busy machine it should not cost
		// ten times it either.
		benchtest.Metric(t, r, p+"Get encrypted ÷ plain", 0.5, 10)
		benchtest.Metric(t, r, p+"Put encrypted ÷ plain", 0.3, 20)
		// A cold read unwraps in Key Vault: it cannot be cheaper than a
		// warm one.
		if v := benchtest.Metric(t, r, p+"Get cold ÷ warm", 0, 1e4); v < 2 {
			t.Errorf("%s cold read only %.2f× a warm one: the cache was not dropped", en.name, v)
		}
		for _, g := range []string{p + "warm Get ≤ 1.2× plain", p + "Put ≤ 1.5× plain"} {
			if !hasGoal(r, g) {
				t.Errorf("no goal %q in %+v", g, r.Goals)
			}
		}
	}
	if want := 2 * ran; len(r.Goals) != want {
		t.Errorf("%d goals for %d backends: %+v", len(r.Goals), ran, r.Goals)
	}
	if skipped(r, "SQLite") != "" {
		t.Fatalf("SQLite skipped: %v", r.Skipped)
	}
	if why := skipped(r, "PostgreSQL"); why != "" {
		if bench.PostgresRequired() {
			t.Fatalf("PostgreSQL backend skipped where PostgreSQL is required: %s", why)
		}
		t.Skip(why)
	}
}

func skipped(r *bench.Result, engine string) string {
	for _, s := range r.Skipped {
		if strings.HasPrefix(s, engine+": ") {
			return s
		}
	}
	return ""
}

func hasGoal(r *bench.Result, text string) bool {
	for _, g := range r.Goals {
		if g.Text == text && g.Measured != "" {
			return true
		}
	}
	return false
}

// The plain side must write a new value each time, as the encrypted side
// does (fresh nonce, fresh ciphertext): SQLite skips writing a page whose
// bytes an update leaves as they were, so a baseline that rewrote one
// constant value committed without writing its record and made encrypted
// Puts look about three times as costly as they are.
func TestPlainPutWritesNewBytes(t *testing.T) {
	o := bench.Options{Smoke: true, Dir: t.TempDir(), Progress: io.Discard}
	e, closeAll, err := open(t.Context(), o, engines[0], sizes{records: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	var seen [][]byte
	for range 3 {
		if err := e.plainPut(t.Context(), 0); err != nil {
			t.Fatal(err)
		}
		v, err := e.plain.get(t.Context(), e.key(0))
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range seen {
			if bytes.Equal(s, v) {
				t.Fatal("the plain side wrote the bytes it replaced")
			}
		}
		seen = append(seen, v)
	}
}
