package keyvault

import (
	"bytes"
	"encoding/hex"
	"testing"
)

// RFC 3394 section 4 test vectors.
func TestAESKeyWrapRFC3394(t *testing.T) {
	h := func(s string) []byte { b, _ := hex.DecodeString(s); return b }
	cases := []struct{ kek, key, wrapped string }{
		{"000102030405060708090A0B0C0D0E0F", "00112233445566778899AABBCCDDEEFF", "1FA68B0A8112B447AEF34BD8FB5A7B829D3E862371D2CFE5"},
		{"000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF", "96778B25AE6CA435F92B5B97C050AED2468AB8A17AD84E5D"},
		{"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF", "64E8C3F9CE0F5BA263E9777905818A2A93C8191E7D6E8AE7"},
		{"000102030405060708090A0B0C0D0E0F1011121314151617", "00112233445566778899AABBCCDDEEFF0001020304050607", "031D33264E15D33268F24EC260743EDCE1C6C7DDEE725A936BA814915C6762D2"},
		{"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF0001020304050607", "A8F9BC1612C68B3FF6E6F4FBE30E71E4769C8B80A32CB8958CD5D17D6B254DA1"},
		{"000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F", "00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F", "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"},
	}
	for _, tc := range cases {
		got, err := aesKeyWrap(h(tc.kek), h(tc.key))
		if err != nil || !bytes.Equal(got, h(tc.wrapped)) {
			t.Fatalf("wrap %s: %x %v", tc.wrapped, got, err)
		}
		back, err := aesKeyUnwrap(h(tc.kek), got)
		if err != nil || !bytes.Equal(back, h(tc.key)) {
			t.Fatalf("unwrap %s: %x %v", tc.wrapped, back, err)
		}
		tampered := append([]byte(nil), got...)
		tampered[len(tampered)-1] ^= 1
		if _, err := aesKeyUnwrap(h(tc.kek), tampered); err == nil {
			t.Fatal("tampered input must fail the integrity check")
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 8), make([]byte, 17)} {
		if _, err := aesKeyWrap(make([]byte, 16), bad); err == nil {
			t.Fatalf("wrap of %d bytes must fail", len(bad))
		}
	}
}
