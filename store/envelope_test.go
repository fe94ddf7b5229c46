package store

import (
	"bytes"
	"errors"
	"testing"
)

func TestSealOpenRecord(t *testing.T) {
	k := aeadOf(t, key(9))
	blob, err := sealRecord(k, "t", "k", "dek1", []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	// openRecord decrypts in place, so every attempt gets its own copy.
	parsed := func() parsedRecord {
		p, err := parseRecord(bytes.Clone(blob))
		if err != nil || p.dekID != "dek1" {
			t.Fatalf("parse = %+v, %v", p, err)
		}
		return p
	}
	got, err := openRecord(k, "t", "k", parsed())
	if err != nil || string(got) != "hello" {
		t.Fatalf("open = %q, %v", got, err)
	}
	for _, c := range [][3]string{{"u", "k", "dek1"}, {"t", "j", "dek1"}} {
		if _, err := openRecord(k, c[0], c[1], parsed()); !errors.Is(err, ErrIntegrity) {
			t.Fatalf("opened as %s/%s: %v", c[0], c[1], err)
		}
	}
	if _, err := openRecord(aeadOf(t, key(8)), "t", "k", parsed()); !errors.Is(err, ErrIntegrity) {
		t.Fatalf("opened with another dek: %v", err)
	}
}

// The length prefixes keep ("ab","c") and ("a","bc") apart.
func TestAdditionalDataUnambiguous(t *testing.T) {
	if bytes.Equal(additionalData("ab", "c", "d"), additionalData("a", "bc", "d")) {
		t.Fatal("two tuples encode alike")
	}
}

func TestKeyCheckValue(t *testing.T) {
	kcv := KeyCheckValue(key(1))
	if len(kcv) != KCVSize || !checkKCV(key(1), kcv) || checkKCV(key(2), kcv) || checkKCV(key(1), kcv[:4]) {
		t.Fatal("key check value does not tell keys apart")
	}
	if bytes.Contains(key(1), kcv) {
		t.Fatal("kcv is part of the key")
	}
}

// Record blobs come from the database: outside input. parseRecord must
// never panic, and what it accepts must hold the parts a record has.
func FuzzParseRecord(f *testing.F) {
	for _, v := range [][]byte{nil, []byte("v"), bytes.Repeat([]byte("x"), 1024)} {
		blob, err := sealRecord(aeadOf(f, key(1)), "t", "k", "0123456789abcdef0123456789abcdef", v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(blob)
	}
	f.Add([]byte{})
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 255, 'a'})
	f.Add([]byte{2, 1, 'a'})
	f.Fuzz(func(t *testing.T, blob []byte) {
		p, err := parseRecord(blob)
		if err != nil {
			if !errors.Is(err, errMalformedRecord) {
				t.Fatalf("error %v is not errMalformedRecord", err)
			}
			return
		}
		if len(p.dekID) == 0 || len(p.dekID) > maxDEKIDLen || len(p.nonce) != nonceSize || len(p.ciphertext) < tagSize {
			t.Fatalf("accepted %x as %+v", blob, p)
		}
		if _, err := openRecord(aeadOf(t, key(1)), "t", "k", p); err != nil && !errors.Is(err, ErrIntegrity) {
			t.Fatalf("open failed other than by integrity: %v", err)
		}
	})
}
