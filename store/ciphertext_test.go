package store_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/storetest"
)

// Ciphertexts given to Decrypt are outside input: whatever the bytes,
// Decrypt must not panic, must fail with ErrIntegrity unless they are a
// ciphertext the tenant's key made, and then return its plaintext. The
// checked-in corpus (testdata/fuzz/FuzzDecrypt) holds the malformed
// shapes: unknown version, bad key id lengths, truncations.
func FuzzDecrypt(f *testing.F) {
	h := storetest.NewHarness(f)
	s := newStore(f, h)
	if _, err := s.AddTenant(f.Context(), "a", h.Key); err != nil {
		f.Fatal(err)
	}
	plaintext := []byte("fuzz me")
	valid, err := s.Encrypt(f.Context(), "a", plaintext, nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:len(valid)-1])
	f.Add(append(bytes.Clone(valid), 0))
	f.Add([]byte{})
	f.Add([]byte{1})
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 65, 'a'})
	f.Add([]byte{2, 4, 'd', 'e', 'k', '1'})
	f.Fuzz(func(t *testing.T, c []byte) {
		in := bytes.Clone(c)
		got, err := s.Decrypt(t.Context(), "a", c, nil)
		if !bytes.Equal(in, c) {
			t.Fatal("Decrypt changed the caller's ciphertext")
		}
		if err != nil {
			if !errors.Is(err, store.ErrIntegrity) {
				t.Fatalf("Decrypt(%x) failed other than by integrity: %v", c, err)
			}
			return
		}
		if !bytes.Equal(c, valid) || !bytes.Equal(got, plaintext) {
			t.Fatalf("Decrypt(%x) = %q: accepted a ciphertext the key did not make", c, got)
		}
	})
}
