package storetest

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
)

// The leak scan is only as good as its search: it must find a key planted
// in each form the store could plausibly emit it in.
func TestFindLeakFindsPlantedKeys(t *testing.T) {
	k := make([]byte, 32)
	rand.Read(k)
	js, _ := json.Marshal(map[string]any{"dek": k})
	planted := map[string][]byte{
		"raw":            append([]byte("xx"), append(k, 'y')...),
		"hex":            []byte("dek=" + hex.EncodeToString(k)),
		"HEX":            []byte("dek=" + strings.ToUpper(hex.EncodeToString(k))),
		"json []byte":    js,
		"base64 shift 1": []byte(base64.StdEncoding.EncodeToString(append([]byte{1}, k...))),
		"base64 shift 2": []byte(base64.RawStdEncoding.EncodeToString(append([]byte{1, 2}, append(k, 9)...))),
		"base64url":      []byte(base64.RawURLEncoding.EncodeToString(k)),
	}
	for name, data := range planted {
		if findLeak([][]byte{k}, data) == "" {
			t.Errorf("%s: planted key not found", name)
		}
	}
	if leak := findLeak([][]byte{k}, bytes.Repeat([]byte{0}, 4096)); leak != "" {
		t.Errorf("found %s in zeros", leak)
	}
}
