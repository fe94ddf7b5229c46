package envelope_test

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"testing"

	"github.com/cmkd-io/cmkd/envelope"
)

// BenchmarkDecrypt is a warm Go API decrypt of 1 KiB, for profiling
// (go test -bench Decrypt -cpuprofile); cmkd-bench's api scenario compares
// it with AES-GCM in process.
func BenchmarkDecrypt(b *testing.B) {
	d, err := deploy()
	if err != nil {
		b.Fatal(err)
	}
	defer d.close()
	env, err := envelope.Open(b.Context(), d.cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer env.Close()
	pt, aad := make([]byte, 1024), []byte("invoices/42/iban")
	rand.Read(pt)
	ct, err := env.Encrypt(b.Context(), "acme", pt, aad)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		got, err := env.Decrypt(b.Context(), "acme", ct, aad)
		if err != nil || !bytes.Equal(got, pt) {
			b.Fatalf("decrypt: %v", err)
		}
	}
}

// BenchmarkAESGCM is the floor BenchmarkDecrypt is compared with: AES-256-GCM
// of the same size with a key in memory.
func BenchmarkAESGCM(b *testing.B) {
	key := make([]byte, 32)
	rand.Read(key)
	blk, _ := aes.NewCipher(key)
	gcm, _ := cipher.NewGCM(blk)
	pt, aad := make([]byte, 1024), []byte("invoices/42/iban")
	nonce := make([]byte, gcm.NonceSize())
	ct := gcm.Seal(nil, nonce, pt, aad)
	b.SetBytes(int64(len(pt)))
	for b.Loop() {
		got, err := gcm.Open(nil, nonce, ct, aad)
		if err != nil || !bytes.Equal(got, pt) {
			b.Fatalf("open: %v", err)
		}
	}
}
