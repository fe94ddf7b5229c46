package keyvault

import (
	"crypto/aes"
	"crypto/subtle"
	"encoding/binary"
	"errors"
)

// errKeyWrap hides why an unwrap failed: the caller learns only that the
// input did not unwrap, never anything about the key.
var errKeyWrap = errors.New("aes key wrap: invalid input")

// kwIV is the RFC 3394 default initial value.
var kwIV = []byte{0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6, 0xA6}

// aesKeyWrap is RFC 3394 section 2.2.1 (A128KW/A192KW/A256KW).
func aesKeyWrap(kek, plain []byte) ([]byte, error) {
	if len(plain) < 16 || len(plain)%8 != 0 {
		return nil, errKeyWrap
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, errKeyWrap
	}
	n := len(plain) / 8
	out := make([]byte, 8+len(plain))
	copy(out, kwIV)
	copy(out[8:], plain)
	var buf [16]byte
	for j := 0; j < 6; j++ {
		for i := 1; i <= n; i++ {
			copy(buf[:8], out[:8])
			copy(buf[8:], out[8*i:8*i+8])
			block.Encrypt(buf[:], buf[:])
			binary.BigEndian.PutUint64(out[:8], binary.BigEndian.Uint64(buf[:8])^uint64(n*j+i)) // #nosec G115 -- RFC 3394 step counter, 6 × blocks of a key: small and positive
			copy(out[8*i:], buf[8:])
		}
	}
	return out, nil
}

// aesKeyUnwrap is RFC 3394 section 2.2.2 with the integrity check of 2.2.3.
func aesKeyUnwrap(kek, wrapped []byte) ([]byte, error) {
	if len(wrapped) < 24 || len(wrapped)%8 != 0 {
		return nil, errKeyWrap
	}
	block, err := aes.NewCipher(kek)
	if err != nil {
		return nil, errKeyWrap
	}
	n := len(wrapped)/8 - 1
	out := append([]byte(nil), wrapped...)
	var buf [16]byte
	for j := 5; j >= 0; j-- {
		for i := n; i >= 1; i-- {
			binary.BigEndian.PutUint64(buf[:8], binary.BigEndian.Uint64(out[:8])^uint64(n*j+i)) // #nosec G115 -- RFC 3394 step counter, 6 × blocks of a key: small and positive
			copy(buf[8:], out[8*i:8*i+8])
			block.Decrypt(buf[:], buf[:])
			copy(out[:8], buf[:8])
			copy(out[8*i:], buf[8:])
		}
	}
	if subtle.ConstantTimeCompare(out[:8], kwIV) != 1 {
		return nil, errKeyWrap
	}
	return out[8:], nil
}
