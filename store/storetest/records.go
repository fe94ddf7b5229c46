package storetest

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd/store"
)

var recordCases = []testCase{
	{"RecordPutGetDeleteList", testRecordCRUD},
	{"RecordFreshNonce", testRecordFreshNonce},
	{"RecordMovedCiphertextFails", testRecordMoved},
	{"RecordSizeLimit", testRecordSizeLimit},
	{"RecordPutAfterTenantReAddedElsewhere", testPutAfterReAdd},
}

// A process that cached a tenant's DEK for writes keeps writing after
// another process removed the tenant and added it again: the DEK it held
// is gone, so it takes the new one, instead of failing every write until
// its cache expires.
func testPutAfterReAdd(t *testing.T, f *fixture) {
	s1, s2 := f.store(nil), f.store(nil)
	f.addTenant(s1, "a")
	put(t, s1, "a", "k", []byte("before"))
	if err := s2.RemoveTenant(t.Context(), "a", true); err != nil {
		t.Fatal(err)
	}
	f.addTenant(s2, "a")
	put(t, s1, "a", "k", []byte("after"))
	if got := get(t, s2, "a", "k"); string(got) != "after" {
		t.Fatalf("the other process reads %q, want the write made after the re-add", got)
	}
}

func testRecordCRUD(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	put(t, s, "a", "k", []byte("one"))
	put(t, s, "a", "k", []byte("two"))
	if got := get(t, s, "a", "k"); string(got) != "two" {
		t.Fatalf("overwritten record reads %q", got)
	}
	put(t, s, "a", "empty", nil)
	if got := get(t, s, "a", "empty"); len(got) != 0 {
		t.Fatalf("empty record reads %q", got)
	}
	wantErr(t, s.Delete(t.Context(), "a", "k"), nil)
	_, err := s.Get(t.Context(), "a", "k")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.Delete(t.Context(), "a", "k"), store.ErrNotFound)
	_, err = s.Get(t.Context(), "nobody", "k")
	wantErr(t, err, store.ErrNotFound)
	wantErr(t, s.Put(t.Context(), "nobody", "k", []byte("v")), store.ErrNotFound)
	for _, key := range []string{"", strings.Repeat("k", store.MaxRecordKeyLen+1), "bad\xffkey", "half\xc3"} {
		wantErr(t, s.Put(t.Context(), "a", key, []byte("v")), store.ErrInvalidKey)
	}

	putMany(t, s, "a", 10)
	var pages [][]string
	for after := ""; ; {
		keys, err := s.List(t.Context(), "a", after, 4)
		if err != nil {
			t.Fatal(err)
		}
		if len(keys) == 0 {
			break
		}
		pages = append(pages, keys)
		after = keys[len(keys)-1]
	}
	got := fmt.Sprint(pages)
	if want := "[[empty k00 k01 k02] [k03 k04 k05 k06] [k07 k08 k09]]"; got != want {
		t.Fatalf("list pages %s, want %s", got, want)
	}
}

// Writing the same value twice gives two different ciphertexts, and neither
// shows the value.
func testRecordFreshNonce(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	value := bytes.Repeat([]byte("secret "), 20)
	put(t, s, "a", "k", value)
	b1, err := s.Backend().GetRecord(t.Context(), "a", "k")
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, "a", "k", value)
	b2, err := s.Backend().GetRecord(t.Context(), "a", "k")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b1, b2) {
		t.Fatal("same value encrypted twice to the same blob")
	}
	// version, id length, 32-char DEK id, then the 12-byte nonce.
	hdr := 2 + len(activeDEK(t, s, "a").ID)
	if bytes.Equal(b1[hdr:hdr+12], b2[hdr:hdr+12]) {
		t.Fatal("nonce reused")
	}
	if bytes.Contains(b1, []byte("secret")) || len(b1) != hdr+12+len(value)+16 {
		t.Fatalf("blob of %d bytes for %d bytes of value, or holds the plaintext", len(b1), len(value))
	}
}

// A ciphertext copied to another key, another tenant, or altered, fails
// with ErrIntegrity instead of decrypting.
func testRecordMoved(t *testing.T, f *fixture) {
	s := f.store(nil)
	f.addTenant(s, "a")
	f.addTenant(s, "b")
	put(t, s, "a", "k1", []byte("a's first"))
	put(t, s, "a", "k2", []byte("a's second"))
	put(t, s, "b", "k1", []byte("b's first"))
	b := s.Backend()
	blob, err := b.GetRecord(t.Context(), "a", "k1")
	if err != nil {
		t.Fatal(err)
	}
	aDEK, bDEK := activeDEK(t, s, "a").ID, activeDEK(t, s, "b").ID
	flipped := bytes.Clone(blob)
	flipped[len(flipped)-20] ^= 1
	for _, c := range []struct {
		name, tenant, key, dek string
		blob                   []byte
	}{
		{"other key", "a", "k2", aDEK, blob},
		{"other tenant", "b", "k1", bDEK, blob},
		{"flipped bit", "a", "k1", aDEK, flipped},
		{"truncated", "a", "k1", aDEK, blob[:len(blob)-17]},
		{"empty", "a", "k1", aDEK, []byte{}},
	} {
		if err := b.PutRecord(t.Context(), c.tenant, c.key, c.dek, c.blob); err != nil {
			t.Fatal(err)
		}
		for _, r := range []*store.Store{s, f.store(nil)} {
			_, err := r.Get(t.Context(), c.tenant, c.key)
			if !errorsIs(err, store.ErrIntegrity) {
				t.Fatalf("%s: get = %v, want ErrIntegrity", c.name, err)
			}
		}
	}
}

func testRecordSizeLimit(t *testing.T, f *fixture) {
	s := f.store(func(c *store.Config) { c.MaxRecordSize = 1024 })
	f.addTenant(s, "a")
	put(t, s, "a", "max", make([]byte, 1024))
	wantErr(t, s.Put(t.Context(), "a", "over", make([]byte, 1025)), store.ErrTooLarge)
	_, err := s.Get(t.Context(), "a", "over")
	wantErr(t, err, store.ErrNotFound)
	if got := get(t, s, "a", "max"); len(got) != 1024 {
		t.Fatalf("record at the limit reads %d bytes", len(got))
	}
}
