package keyvault

import (
	"bytes"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

var (
	oaep256 = to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256)
	a256kw  = to.Ptr(azkeys.EncryptionAlgorithmA256KW)
)

// persistedConfig is what cmkd dev passes: a state file and a CA file in
// its data directory.
func persistedConfig(dir string) Config {
	return Config{ThrottleLimit: -1, StateFile: filepath.Join(dir, "vault.json"), CAFile: filepath.Join(dir, "ca.pem")}
}

// restart closes srv and starts a new emulator on the same address with
// the same files, as cmkd dev does after a crash.
func restart(t *testing.T, srv *Server, cfg Config) *Server {
	t.Helper()
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Addr = strings.TrimPrefix(srv.URL(), "https://")
	srv2 := start(t, cfg)
	if srv2.URL() != srv.URL() {
		t.Fatalf("restarted on %s, want %s", srv2.URL(), srv.URL())
	}
	return srv2
}

// TestStateSurvivesRestart: a client that keeps its vault URL and CA file
// sees the same keys, versions, attributes, tags, key_ops, deleted keys,
// rotation policies and access state after a restart, and DEKs wrapped
// before it unwrap after it.
func TestStateSurvivesRestart(t *testing.T) {
	cfg := persistedConfig(t.TempDir())
	srv := start(t, cfg)
	c := clientFromCAFile(t, srv.URL(), cfg.CAFile)
	ctx := t.Context()
	tags := map[string]*string{"tenant": to.Ptr("t1")}
	rsaKey := createKey(t, c, "rsa", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), Tags: tags,
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationWrapKey), to.Ptr(azkeys.KeyOperationUnwrapKey)}})
	createKey(t, c, "aes", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM), KeySize: to.Ptr[int32](256), Tags: tags})
	createKey(t, c, "gone", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM)})
	v1 := rsaKey.Key.KID.Version()
	dek := bytes.Repeat([]byte{7}, 32)
	wrappedRSA, err := c.WrapKey(ctx, "rsa", v1, azkeys.KeyOperationParameters{Algorithm: oaep256, Value: dek}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wrappedAES, err := c.WrapKey(ctx, "aes", "", azkeys.KeyOperationParameters{Algorithm: a256kw, Value: dek}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mutate(t, c, v1)
	before := readVault(t, c)
	if len(before.Versions) != 2 || len(before.Versions["rsa"]) != 2 || len(before.Deleted) != 1 {
		t.Fatalf("setup: %d keys, %d rsa versions, %d deleted", len(before.Versions), len(before.Versions["rsa"]), len(before.Deleted))
	}
	srv.Revoke()

	srv2 := restart(t, srv, cfg)
	_, err = c.GetKey(ctx, "rsa", "", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "ForbiddenByRbac")
	srv2.Grant()
	if after := readVault(t, c); !reflect.DeepEqual(before, after) {
		t.Fatalf("the vault a client reads changed across the restart:\nbefore %+v\nafter  %+v", before, after)
	}
	un, err := c.UnwrapKey(ctx, "aes", wrappedAES.KID.Version(), azkeys.KeyOperationParameters{Algorithm: a256kw, Value: wrappedAES.Result}, nil)
	if err != nil || !bytes.Equal(un.Result, dek) {
		t.Fatalf("a DEK wrapped by aes before the restart does not unwrap after it: %v", err)
	}
	checkDisabledThenUnwraps(t, c, v1, wrappedRSA.Result, dek)
	checkFileModes(t, cfg)
}

// mutate rotates rsa, disables its first version, deletes gone and sets a
// rotation policy.
func mutate(t *testing.T, c *azkeys.Client, v1 string) {
	t.Helper()
	ctx := t.Context()
	if _, err := c.RotateKey(ctx, "rsa", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.UpdateKey(ctx, "rsa", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteKey(ctx, "gone", nil); err != nil {
		t.Fatal(err)
	}
	pol := azkeys.KeyRotationPolicy{Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: to.Ptr("P90D")}}
	if _, err := c.UpdateKeyRotationPolicy(ctx, "rsa", pol, nil); err != nil {
		t.Fatal(err)
	}
}

// checkDisabledThenUnwraps: the disabled version still refuses after the
// restart, and once enabled again unwraps what it wrapped before.
func checkDisabledThenUnwraps(t *testing.T, c *azkeys.Client, v1 string, wrapped, dek []byte) {
	t.Helper()
	ctx := t.Context()
	params := azkeys.KeyOperationParameters{Algorithm: oaep256, Value: wrapped}
	_, err := c.UnwrapKey(ctx, "rsa", v1, params, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "KeyDisabled")
	if _, err := c.UpdateKey(ctx, "rsa", v1, azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)}}, nil); err != nil {
		t.Fatal(err)
	}
	un, err := c.UnwrapKey(ctx, "rsa", v1, params, nil)
	if err != nil || !bytes.Equal(un.Result, dek) {
		t.Fatalf("a DEK wrapped by rsa before the restart does not unwrap after it: %v", err)
	}
}

// checkFileModes: the state file and the CA key hold private keys.
func checkFileModes(t *testing.T, cfg Config) {
	t.Helper()
	for _, p := range []string{cfg.StateFile, cfg.CAFile + ".key"} {
		info, err := os.Stat(p)
		if err != nil || info.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v mode %v, want 0600", p, err, info.Mode())
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(filepath.Dir(cfg.StateFile), "*.tmp-*"))
	if len(leftovers) != 0 {
		t.Fatalf("temporary files left behind: %v", leftovers)
	}
}

// TestRotateAfterRestart: versions made after a restart sort after the
// restored ones, so the newest is the latest and lists stay in order.
func TestRotateAfterRestart(t *testing.T) {
	cfg := persistedConfig(t.TempDir())
	srv := start(t, cfg)
	c := clientFromCAFile(t, srv.URL(), cfg.CAFile)
	createKey(t, c, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM)})
	if _, err := c.RotateKey(t.Context(), "k", nil); err != nil {
		t.Fatal(err)
	}
	srv2 := restart(t, srv, cfg)
	rotated, err := c.RotateKey(t.Context(), "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	latest, err := c.GetKey(t.Context(), "k", "", nil)
	if err != nil || *latest.Key.KID != *rotated.Key.KID {
		t.Fatalf("latest after rotating a restored key: %v, want %s", err, *rotated.Key.KID)
	}
	srv2.vault.mu.Lock()
	vs := srv2.vault.keys["k"].sortedVersions()
	srv2.vault.mu.Unlock()
	if len(vs) != 3 || vs[2].id != rotated.Key.KID.Version() {
		t.Fatalf("versions after restart are out of order: %d, last %s", len(vs), vs[len(vs)-1].id)
	}
}

func TestBadStateFileFailsStart(t *testing.T) {
	cfg := persistedConfig(t.TempDir())
	srv := start(t, cfg)
	createKey(t, newClient(t, srv), "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeOctHSM)})
	srv.Close()
	good, err := os.ReadFile(cfg.StateFile)
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"not json":     []byte("{not json"),
		"torn":         good[:len(good)/2],
		"empty":        nil,
		"newer format": bytes.Replace(good, []byte(`"format":3`), []byte(`"format":4`), 1),
		"bad key":      bytes.Replace(good, []byte(`"kty":"oct-HSM"`), []byte(`"kty":"DES"`), 1),
	} {
		t.Run(name, func(t *testing.T) {
			os.WriteFile(cfg.StateFile, content, 0o600)
			_, err := Start(cfg)
			if !errors.Is(err, ErrBadStateFile) || !strings.Contains(err.Error(), cfg.StateFile) || !strings.Contains(err.Error(), "delete it") {
				t.Fatalf("start: %v, want ErrBadStateFile naming the file and the fix", err)
			}
		})
	}
}

func TestUnwritableStateFileFailsStart(t *testing.T) {
	_, err := Start(Config{StateFile: filepath.Join(t.TempDir(), "missing-dir", "vault.json")})
	if !errors.Is(err, ErrBadStateFile) || !strings.Contains(err.Error(), "missing-dir") {
		t.Fatalf("start: %v, want ErrBadStateFile naming the file", err)
	}
}

func TestTakenPortFails(t *testing.T) {
	srv := start(t, Config{})
	addr := strings.TrimPrefix(srv.URL(), "https://")
	_, err := Start(Config{Addr: addr})
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("second emulator on a taken port: %v, want an error naming the address", err)
	}
}
