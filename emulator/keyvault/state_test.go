package keyvault

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// TestStateSurvivesRestart: keys, versions, attributes, deleted keys,
// rotation policies and the revoked flag come back after a restart on the
// same address, and a DEK wrapped before it unwraps after it.
func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{ThrottleLimit: -1, StateFile: filepath.Join(dir, "vault.json"), CAFile: filepath.Join(dir, "ca.pem")}
	srv, err := Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, srv)
	ctx := t.Context()
	rsaKey, err := c.CreateKey(ctx, "rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateKey(ctx, "aes", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr[int32](256)}, nil); err != nil {
		t.Fatal(err)
	}
	v1 := rsaKey.Key.KID.Version()
	dek := bytes.Repeat([]byte{7}, 32)
	wrapped, err := c.WrapKey(ctx, "rsa", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rotated, err := c.RotateKey(ctx, "rsa", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateKey(ctx, "rsa", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteKey(ctx, "aes", nil); err != nil {
		t.Fatal(err)
	}
	pol := azkeys.KeyRotationPolicy{Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P90D")}}
	if _, err := c.UpdateKeyRotationPolicy(ctx, "rsa", pol, nil); err != nil {
		t.Fatal(err)
	}
	srv.Revoke()
	addr := strings.TrimPrefix(srv.URL(), "https://")
	srv.Close()

	cfg.Addr = addr
	srv2 := start(t, cfg)
	if srv2.URL() != srv.URL() {
		t.Fatalf("restarted on %s, want %s", srv2.URL(), srv.URL())
	}
	pem, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	if !pool.Equal(srv2.CAPool()) {
		t.Fatal("the restarted emulator uses another CA than the file clients trust")
	}
	c2 := newClient(t, srv2)
	_, err = c2.GetKey(ctx, "rsa", "", nil)
	wantErr(t, err, 403, "Forbidden", "ForbiddenByRbac")
	srv2.Grant()
	latest, err := c2.GetKey(ctx, "rsa", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *latest.Key.KID != *rotated.Key.KID {
		t.Fatalf("latest version %s, want %s", *latest.Key.KID, *rotated.Key.KID)
	}
	old, err := c2.GetKey(ctx, "rsa", v1, nil)
	if err != nil || *old.Attributes.Enabled {
		t.Fatalf("v1 after restart: %v enabled=%v, want disabled", err, old.Attributes)
	}
	if _, err := c2.UpdateKey(ctx, "rsa", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	un, err := c2.UnwrapKey(ctx, "rsa", v1, azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: wrapped.Result}, nil)
	if err != nil || !bytes.Equal(un.Result, dek) {
		t.Fatalf("a DEK wrapped before the restart does not unwrap after it: %v", err)
	}
	if _, err := c2.GetDeletedKey(ctx, "aes", nil); err != nil {
		t.Fatalf("deleted key lost across restart: %v", err)
	}
	got, err := c2.GetKeyRotationPolicy(ctx, "rsa", nil)
	if err != nil || got.Attributes == nil || got.Attributes.ExpiryTime == nil || *got.Attributes.ExpiryTime != "P90D" {
		t.Fatalf("rotation policy lost across restart: %v %+v", err, got)
	}
	info, err := os.Stat(cfg.StateFile)
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("state file mode %v, want 0600 (it holds private keys)", info.Mode())
	}
}

func TestCorruptStateFileFailsClearly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.json")
	os.WriteFile(path, []byte("{not json"), 0o600)
	_, err := Start(Config{StateFile: path})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "delete it") {
		t.Fatalf("start with a corrupt state file: %v, want an error naming the file and the fix", err)
	}
}

func TestTakenPortFails(t *testing.T) {
	srv := start(t, Config{})
	_, err := Start(Config{Addr: strings.TrimPrefix(srv.URL(), "https://")})
	if err == nil {
		t.Fatal("a second emulator started on a taken port")
	}
}

func TestConcurrentMutationsLeaveALoadableFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vault.json")
	srv := start(t, Config{StateFile: path})
	c := newClient(t, srv)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := "k" + string(rune('a'+i))
			if _, err := c.CreateKey(t.Context(), name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM)}, nil); err != nil {
				t.Error(err)
			}
			if _, err := c.RotateKey(t.Context(), name, nil); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	srv.Close()
	srv2 := start(t, Config{StateFile: path})
	n := 0
	pager := newClient(t, srv2).NewListKeyPropertiesPager(nil)
	for pager.More() {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		n += len(page.Value)
	}
	if n != 8 {
		t.Fatalf("%d keys after reload, want 8", n)
	}
}
