package storetest

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var dekCases = []testCase{
	{"DEKWrappedOnly", testDEKWrappedOnly},
	{"DEKNewAfterEncryptions", testDEKNewAfterEncryptions},
	{"DEKNewAfterAge", testDEKNewAfterAge},
	{"DEKListNotAtVersionInBatches", testDEKListNotAt},
}

// A stored DEK is its wrapping, the version and algorithm that made it and
// a key check value; the plaintext only comes back from Key Vault.
func testDEKWrappedOnly(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	ds := deks(t, s, "a")
	if len(ds) != 1 {
		t.Fatalf("new tenant has %d deks, want 1", len(ds))
	}
	d := ds[0]
	if !d.Active || d.Tenant != "a" || d.Key != f.Key || d.Previous != nil || d.Uses != 0 {
		t.Fatalf("dek = %+v", d)
	}
	if d.Current.KID != f.KID(f.Version) || d.Version() != f.Version || d.Current.Alg != "RSA-OAEP-256" {
		t.Fatalf("wrapping kid %s alg %s, want %s RSA-OAEP-256", d.Current.KID, d.Current.Alg, f.KID(f.Version))
	}
	if len(d.Current.Value) != 256 || len(d.KCV) != store.KCVSize {
		t.Fatalf("wrapped %d bytes, kcv %d bytes", len(d.Current.Value), len(d.KCV))
	}
	plain, err := f.KEK.Unwrap(t.Context(), d.Current)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) != store.DEKSize || !bytes.Equal(store.KeyCheckValue(plain), d.KCV) {
		t.Fatal("unwrapped dek does not match its key check value")
	}
	if bytes.Contains(d.Current.Value, plain) || bytes.Contains(d.KCV, plain[:8]) {
		t.Fatal("stored dek contains its plaintext")
	}
}

// The policy retires the active DEK after DEKMaxEncryptions writes; older
// records stay readable under their own DEK.
func testDEKNewAfterEncryptions(t *testing.T, f *fixture) {
	s := f.store(func(c *store.Config) { c.DEKMaxEncryptions = 3 })
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 7)
	// A store counts uses in memory and writes them in batches, at the
	// limit and when it closes: then the database has them all.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	ds := deks(t, f.store(nil), "a")
	if len(ds) != 3 {
		t.Fatalf("7 writes at 3 per dek made %d deks, want 3", len(ds))
	}
	active := 0
	var uses int64
	for _, d := range ds {
		if d.Active {
			active++
		}
		uses += d.Uses
		if d.Uses > 3 {
			t.Fatalf("dek %s used %d times, limit 3", d.ID, d.Uses)
		}
	}
	if active != 1 || uses != 7 {
		t.Fatalf("%d active deks (want 1), %d uses (want 7)", active, uses)
	}
	readsBack(t, f.store(nil), "a", want)
}

func testDEKNewAfterAge(t *testing.T, f *fixture) {
	s := f.store(func(c *store.Config) { c.DEKMaxAge = time.Hour })
	f.addTenant(s, "a")
	put(t, s, "a", "old", []byte("old"))
	first := activeDEK(t, s, "a")
	f.Clock.Add(59 * time.Minute)
	put(t, s, "a", "mid", []byte("mid"))
	if activeDEK(t, s, "a").ID != first.ID {
		t.Fatal("dek replaced before its age limit")
	}
	f.Clock.Add(2 * time.Minute)
	put(t, s, "a", "new", []byte("new"))
	if activeDEK(t, s, "a").ID == first.ID || len(deks(t, s, "a")) != 2 {
		t.Fatal("dek past its age limit still used for writes")
	}
	readsBack(t, s, "a", map[string][]byte{"old": []byte("old"), "mid": []byte("mid"), "new": []byte("new")})
}

// ListDEKsNotAt pages through every DEK a rewrap must still move, in id
// order, and a moved DEK drops out of the list.
func testDEKListNotAt(t *testing.T, f *fixture) {
	s := f.store(nil)
	for i := range 5 {
		f.addTenant(s, fmt.Sprintf("t%d", i))
	}
	v2 := f.Rotate()
	if l := listNotAt(t, s, f.Key, f.Version, 2); len(l) != 0 {
		t.Fatalf("%d deks listed as not at the version wrapping all of them", len(l))
	}
	todo := listNotAt(t, s, f.Key, v2, 2)
	if len(todo) != 5 {
		t.Fatalf("listed %d deks not at %s, want 5", len(todo), v2)
	}
	for i := 1; i < len(todo); i++ {
		if todo[i-1].ID >= todo[i].ID {
			t.Fatalf("deks not in id order: %s then %s", todo[i-1].ID, todo[i].ID)
		}
	}
	for _, d := range todo[:2] {
		if _, err := s.RewrapDEK(t.Context(), d, f.Key, true); err != nil {
			t.Fatal(err)
		}
	}
	if l := listNotAt(t, s, f.Key, v2, 2); len(l) != 3 {
		t.Fatalf("after moving 2, %d left, want 3", len(l))
	}
	counts, err := s.VersionCounts(t.Context(), f.Key)
	if err != nil || counts[f.Version] != 3 || counts[v2] != 2 || len(counts) != 2 {
		t.Fatalf("version counts = %v, %v", counts, err)
	}
}

func listNotAt(t *testing.T, s *store.Store, key cmkd.KeyID, version string, batch int) []store.DEK {
	t.Helper()
	var all []store.DEK
	after := ""
	for {
		page, err := s.ListDEKsNotAt(t.Context(), key, version, after, batch)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) > batch {
			t.Fatalf("page of %d, batch %d", len(page), batch)
		}
		all = append(all, page...)
		if len(page) < batch {
			return all
		}
		after = page[len(page)-1].ID
	}
}
