package keyvault

import (
	"bytes"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

func TestHSMThrottleDefaults(t *testing.T) {
	c := Config{ManagedHSM: true}.withDefaults()
	if c.ThrottleLimit != DefaultHSMThrottleLimit || c.ThrottleWindow != time.Second {
		t.Fatalf("Managed HSM defaults: %d per %v", c.ThrottleLimit, c.ThrottleWindow)
	}
	if v := (Config{}).withDefaults(); v.ThrottleLimit != DefaultThrottleLimit || v.ThrottleWindow != 10*time.Second {
		t.Fatalf("vault defaults: %d per %v", v.ThrottleLimit, v.ThrottleWindow)
	}
	k := newKindThrottle()
	if k.limits[kindAESKeyWrap] != 9000 || k.limits[kindRSA2048Unwrap] != 1100 {
		t.Fatalf("per-kind limits %v", k.limits)
	}
}

// waitWindow waits until the one-second window under way has surely
// ended; windows start with the first request they count.
func waitWindow() { time.Sleep(1100 * time.Millisecond) }

func TestHSMThrottlePerSecond(t *testing.T) {
	srv := start(t, Config{ManagedHSM: true, ThrottleLimit: 3})
	c := newClient(t, srv)
	for i := range 4 {
		_, err := c.GetRandomBytes(t.Context(), azkeys.GetRandomBytesParameters{Count: to.Ptr(int32(1))}, nil)
		if i < 3 && err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if i == 3 {
			wantErr(t, err, http.StatusTooManyRequests, "Throttled", "")
		}
	}
	waitWindow()
	if _, err := c.GetRandomBytes(t.Context(), azkeys.GetRandomBytesParameters{Count: to.Ptr(int32(1))}, nil); err != nil {
		t.Fatalf("a second later: %v", err)
	}
}

func TestHSMThrottlePerOperationKind(t *testing.T) {
	srv := start(t, Config{ManagedHSM: true, ThrottleLimit: DefaultHSMThrottleLimit})
	// Azure's figures scaled down, so that a test reaches them.
	srv.kinds.limits = map[string]int{kindAESKeyWrap: 3, kindRSA2048Unwrap: 2}
	c := newClient(t, srv)
	aes := createKey(t, c, "aes", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr(int32(256))})
	rsa := createKey(t, c, "rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), KeySize: to.Ptr(int32(2048))})
	dek := bytes.Repeat([]byte{1}, 32)
	aesKW := azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmA256KW), Value: dek}
	rsaOAEP := azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}

	var wrapped []byte
	for i := range 3 { // wrap, unwrap, wrap: the AES budget of 3
		var err error
		if i == 1 {
			_, err = c.UnwrapKey(t.Context(), "aes", aes.Key.KID.Version(), azkeys.KeyOperationParameters{Algorithm: aesKW.Algorithm, Value: wrapped}, nil)
		} else {
			var w azkeys.WrapKeyResponse
			w, err = c.WrapKey(t.Context(), "aes", aes.Key.KID.Version(), aesKW, nil)
			wrapped = w.Result
		}
		if err != nil {
			t.Fatalf("AES op %d: %v", i, err)
		}
	}
	_, err := c.WrapKey(t.Context(), "aes", "", aesKW, nil)
	wantErr(t, err, http.StatusTooManyRequests, "Throttled", "")

	// Other kinds keep their own budgets: RSA wrap is not limited, RSA
	// unwrap is, and the vault's general budget is far from spent.
	var rw azkeys.WrapKeyResponse
	for range 5 {
		if rw, err = c.WrapKey(t.Context(), "rsa", rsa.Key.KID.Version(), rsaOAEP, nil); err != nil {
			t.Fatalf("RSA wrap: %v", err)
		}
	}
	unwrap := azkeys.KeyOperationParameters{Algorithm: rsaOAEP.Algorithm, Value: rw.Result}
	for i := range 2 {
		if _, err := c.UnwrapKey(t.Context(), "rsa", rsa.Key.KID.Version(), unwrap, nil); err != nil {
			t.Fatalf("RSA unwrap %d: %v", i, err)
		}
	}
	_, err = c.UnwrapKey(t.Context(), "rsa", rsa.Key.KID.Version(), unwrap, nil)
	wantErr(t, err, http.StatusTooManyRequests, "Throttled", "")
	if _, err := c.GetKey(t.Context(), "aes", "", nil); err != nil {
		t.Fatalf("get while AES is throttled: %v", err)
	}
	if n := srv.Calls()["throttled"]; n != 2 {
		t.Fatalf("throttled counted %d, want 2", n)
	}

	waitWindow()
	if _, err := c.WrapKey(t.Context(), "aes", "", aesKW, nil); err != nil {
		t.Fatalf("AES wrap a second later: %v", err)
	}

	// Turning throttling off turns the per-kind budgets off too.
	srv.SetThrottle(-1, 0, false)
	for range 5 {
		if _, err := c.UnwrapKey(t.Context(), "rsa", rsa.Key.KID.Version(), unwrap, nil); err != nil {
			t.Fatalf("unwrap with throttling off: %v", err)
		}
	}
}
