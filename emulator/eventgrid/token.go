package eventgrid

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
)

// Lock tokens look like the service's: standard base64 of a small protobuf,
// 0a 26 0a 24 <36-char upper-case GUID> 12 12 0a 10 <16 random bytes>. Clients
// treat them as opaque; the shape matters only so that a token that is not
// one of ours can be told apart (BadToken) from one that expired (TokenLost).
var (
	tokenHead = []byte{0x0a, 0x26, 0x0a, 0x24}
	tokenMid  = []byte{0x12, 0x12, 0x0a, 0x10}
)

const tokenLen = 4 + 36 + 4 + 16

func newLockToken(partition string) string {
	b := make([]byte, 0, tokenLen)
	b = append(b, tokenHead...)
	b = append(b, partition...)
	b = append(b, tokenMid...)
	var r [16]byte
	_, _ = rand.Read(r[:])
	b = append(b, r[:]...)
	return base64.StdEncoding.EncodeToString(b)
}

// validLockToken reports whether tok decodes to the token shape.
func validLockToken(tok string) bool {
	b, err := base64.StdEncoding.DecodeString(tok)
	if err != nil || len(b) != tokenLen {
		return false
	}
	return bytes.HasPrefix(b, tokenHead) && bytes.Equal(b[40:44], tokenMid)
}

func newPartition() string { return strings.ToUpper(newGUID()) }
