package keyvault

import (
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// Calls are counted per key too, so that a test can tell what each of two
// keys in one vault cost; the control endpoint answers the same.
func TestKeyCallsCountPerKey(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	rsa := azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), KeySize: ptr[int32](2048)}
	createKey(t, c, "Alpha", rsa)
	createKey(t, c, "beta", rsa)
	srv.ResetCalls()
	for range 3 {
		if _, err := c.GetKey(t.Context(), "alpha", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.GetKey(t.Context(), "BETA", "", nil); err != nil {
		t.Fatal(err)
	}
	got := srv.KeyCalls()
	if got["alpha"]["getKey"] != 3 || got["beta"]["getKey"] != 1 || len(got) != 2 {
		t.Fatalf("key calls %v, want alpha getKey 3, beta getKey 1", got)
	}
	var remote map[string]map[string]int64
	if rawJSON(t, srv, "GET", srv.URL()+"/_emulator/calls/keys", "", &remote) != 200 || remote["alpha"]["getKey"] != 3 {
		t.Fatalf("control endpoint answered %v", remote)
	}
	srv.ResetCalls()
	if n := len(srv.KeyCalls()); n != 0 {
		t.Fatalf("%d keys counted after a reset", n)
	}
}
