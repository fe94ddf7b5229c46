package keyvault

import (
	"bytes"
	"encoding/json"
	"testing"
)

// FuzzDecodeState feeds arbitrary state files to the loader. It must
// never panic, and whatever it accepts must save and load back unchanged,
// so a restart never drifts. Seeds under testdata/fuzz/FuzzDecodeState are
// files a real vault wrote (RSA, EC, oct-HSM, deleted key, policy).
func FuzzDecodeState(f *testing.F) {
	for _, s := range []string{
		`{"format":1,"keys":[],"deleted":[]}`,
		`{"format":1,"revoked":true}`,
		`{"format":2}`,
		`{"format":1,"keys":[{"name":"k","latest":"00000000000000000000000000000001","versions":[` +
			`{"id":"00000000000000000000000000000001","seq":1,"kty":"oct-HSM","oct":"AAAAAAAAAAAAAAAAAAAAAA==","ops":["wrapKey"],"enabled":true}]}]}`,
		`{"format":1,"keys":[{"name":"k","latest":"x","versions":[{"id":"x","kty":"RSA","pkcs8":"AAAA"}]}]}`,
		`{"format":1,"keys":[{"name":"k","latest":"00000000000000000000000000000001","policy":{"attributes":{"expiryTime":"P"}},"versions":[]}]}`,
		`[]`, `null`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeState(b)
		if err != nil {
			return
		}
		once, err := json.Marshal(got.vault.snapshot(got.revoked))
		if err != nil {
			t.Fatal(err)
		}
		again, err := decodeState(once)
		if err != nil {
			t.Fatalf("a saved state does not load: %v", err)
		}
		twice, _ := json.Marshal(again.vault.snapshot(again.revoked))
		if !bytes.Equal(once, twice) {
			t.Fatalf("state drifts across a save and load:\n%s\n%s", once, twice)
		}
	})
}
