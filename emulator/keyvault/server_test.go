package keyvault

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

func TestConfigValidate(t *testing.T) {
	for name, cfg := range map[string]Config{
		"ThrottleWindow": {ThrottleWindow: -1},
		"NearExpiry":     {NearExpiry: -1},
		"ExpiryCheck":    {ExpiryCheck: -1},
		"VaultName":      {VaultName: "has space"},
	} {
		err := cfg.Validate()
		if !errors.Is(err, ErrInvalidConfig) || !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Fatalf("%s: %v", name, err)
		}
		if _, err := Start(cfg); err == nil {
			t.Fatalf("%s: Start accepted an invalid config", name)
		}
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config: %v", err)
	}
}

func TestCAFileAndTLS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.pem")
	srv := start(t, Config{CAFile: path})
	onDisk, err := os.ReadFile(path)
	if err != nil || !bytes.Equal(onDisk, srv.CAPEM()) {
		t.Fatalf("ca file: %v", err)
	}
	block, _ := pem.Decode(onDisk)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("ca cert: %v", err)
	}
	// Without the CA the server is not trusted.
	if _, err := http.Get(srv.URL() + "/keys?api-version=7.5"); err == nil {
		t.Fatal("system roots must not trust the emulator")
	}
}

// Calls counts what reached each operation under the names other
// components assert on.
func TestCallsPerOperation(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	ctx := t.Context()
	createKey(t, c, "k", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM)})
	c.ImportKey(ctx, "k", azkeys.ImportKeyParameters{Key: &azkeys.JSONWebKey{Kty: ptr(azkeys.KeyTypeOctHSM), K: make([]byte, 32)}}, nil)
	c.GetKey(ctx, "k", "", nil)
	c.NewListKeyPropertiesPager(nil).NextPage(ctx)
	c.NewListKeyPropertiesVersionsPager("k", nil).NextPage(ctx)
	c.UpdateKey(ctx, "k", "", azkeys.UpdateKeyParameters{Tags: map[string]*string{}}, nil)
	c.RotateKey(ctx, "k", nil)
	c.GetKeyRotationPolicy(ctx, "k", nil)
	c.UpdateKeyRotationPolicy(ctx, "k", azkeys.KeyRotationPolicy{}, nil)
	kw := azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256KW), Value: make([]byte, 16)}
	w, _ := c.WrapKey(ctx, "k", "", kw, nil)
	c.UnwrapKey(ctx, "k", "", azkeys.KeyOperationParameters{Algorithm: kw.Algorithm, Value: w.Result}, nil)
	gcm := azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmA256GCM), Value: []byte("x")}
	e, _ := c.Encrypt(ctx, "k", "", gcm, nil)
	c.Decrypt(ctx, "k", "", azkeys.KeyOperationParameters{Algorithm: gcm.Algorithm, Value: e.Result, IV: e.IV, AuthenticationTag: e.AuthenticationTag}, nil)
	c.DeleteKey(ctx, "k", nil)
	c.GetDeletedKey(ctx, "k", nil)
	c.NewListDeletedKeyPropertiesPager(nil).NextPage(ctx)
	c.RecoverDeletedKey(ctx, "k", nil)
	c.DeleteKey(ctx, "k", nil)
	c.PurgeDeletedKey(ctx, "k", nil)
	want := map[string]int64{"challenge": 1, "createKey": 1, "importKey": 1, "getKey": 1, "listKeys": 1, "listVersions": 1,
		"updateKey": 1, "rotateKey": 1, "getRotationPolicy": 1, "updateRotationPolicy": 1, "wrapKey": 1, "unwrapKey": 1,
		"encrypt": 1, "decrypt": 1, "deleteKey": 2, "getDeletedKey": 1, "listDeletedKeys": 1, "recoverKey": 1, "purgeKey": 1}
	got := srv.Calls()
	for op, n := range want {
		if got[op] != n {
			t.Errorf("%s: got %d want %d", op, got[op], n)
		}
	}
	if len(got) != len(want) {
		t.Errorf("calls %v", got)
	}
	srv.ResetCalls()
	if len(srv.Calls()) != 0 {
		t.Fatal("reset")
	}
}

func TestControlAPINeedsToken(t *testing.T) {
	srv := start(t, Config{Token: "secret"})
	req, _ := http.NewRequest(http.MethodPost, srv.URL()+"/_emulator/access", bytes.NewReader([]byte(`{"revoked":true}`)))
	resp, err := httpClient(srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("status %d", resp.StatusCode)
	}
	req, _ = http.NewRequest(http.MethodPost, srv.URL()+"/_emulator/access", bytes.NewReader([]byte(`{"revoked":true}`)))
	req.Header.Set("Authorization", "Bearer secret")
	resp, err = httpClient(srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || !srv.revoked.Load() {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if srv.Calls()["challenge"] != 0 {
		t.Fatal("control requests must not count")
	}
}
