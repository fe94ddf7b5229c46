package keyvault

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// TestBackupRestore: a blob holds every version; restore is refused while
// the name is live or soft-deleted (409 Conflict, the recorded message)
// and accepted after purge, bringing back ids, attributes, tags, the
// rotation policy and key material that still unwraps old DEKs.
func TestBackupRestore(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	ctx := t.Context()
	first := createKey(t, c, "bk", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeRSA), Tags: map[string]*string{"t": ptr("1")}})
	dek := bytes.Repeat([]byte{9}, 32)
	wrapped, err := c.WrapKey(ctx, "bk", "", azkeys.KeyOperationParameters{Algorithm: oaep256, Value: dek}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.RotateKey(ctx, "bk", nil); err != nil {
		t.Fatal(err)
	}
	pol := azkeys.KeyRotationPolicy{Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: ptr("P90D")}}
	if _, err := c.UpdateKeyRotationPolicy(ctx, "bk", pol, nil); err != nil {
		t.Fatal(err)
	}
	before := readVersions(t, c, "bk")
	latestResp, err := c.GetKey(ctx, "bk", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	latest := latestResp.KeyBundle
	policyBefore, _ := c.GetKeyRotationPolicy(ctx, "bk", nil)

	backup, err := c.BackupKey(ctx, "bk", nil)
	if err != nil || len(backup.Value) == 0 {
		t.Fatalf("backup: %v", err)
	}
	restore := func() (azkeys.RestoreKeyResponse, error) {
		return c.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: backup.Value}, nil)
	}
	_, err = restore()
	wantErr(t, err, http.StatusConflict, "Conflict", "")
	if msg := errorMessage(t, err); !bytes.Contains([]byte(msg), []byte("There was a conflict restoring the key '"+string(*latest.Key.KID)+"'.")) {
		t.Fatalf("conflict message %q", msg)
	}
	if _, err := c.DeleteKey(ctx, "bk", nil); err != nil {
		t.Fatal(err)
	}
	_, err = restore()
	wantErr(t, err, http.StatusConflict, "Conflict", "")
	if _, err := c.PurgeDeletedKey(ctx, "bk", nil); err != nil {
		t.Fatal(err)
	}
	restored, err := restore()
	if err != nil {
		t.Fatalf("restore after purge: %v", err)
	}
	if *restored.Key.KID != *latest.Key.KID || !reflect.DeepEqual(restored.Attributes, latest.Attributes) {
		t.Fatalf("restored %s %+v, want %s %+v", *restored.Key.KID, restored.Attributes, *latest.Key.KID, latest.Attributes)
	}
	if after := readVersions(t, c, "bk"); !reflect.DeepEqual(before, after) {
		t.Fatalf("versions changed across backup and restore:\nbefore %+v\nafter  %+v", before, after)
	}
	if policyAfter, err := c.GetKeyRotationPolicy(ctx, "bk", nil); err != nil || !reflect.DeepEqual(policyBefore, policyAfter) {
		t.Fatalf("policy %v: %+v, want %+v", err, policyAfter, policyBefore)
	}
	un, err := c.UnwrapKey(ctx, "bk", first.Key.KID.Version(), azkeys.KeyOperationParameters{Algorithm: oaep256, Value: wrapped.Result}, nil)
	if err != nil || !bytes.Equal(un.Result, dek) {
		t.Fatalf("a DEK wrapped before the backup does not unwrap after the restore: %v", err)
	}
	_, err = c.BackupKey(ctx, "missing", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
}

// TestRestoreIntoAnotherVault: like Key Vault within a geography, a blob
// from one emulator restores into another; the key ids then name the
// vault restored into.
func TestRestoreIntoAnotherVault(t *testing.T) {
	a, b := start(t, Config{VaultName: "vault-a"}), start(t, Config{VaultName: "vault-b"})
	ca, cb := newClient(t, a), newClient(t, b)
	kb := createKey(t, ca, "moving", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC), Curve: ptr(azkeys.CurveNameP256K)})
	digest := digestOf(sha256Hash, "m")
	sig, err := ca.Sign(t.Context(), "moving", "", signParams(azkeys.SignatureAlgorithmES256K, digest), nil)
	if err != nil {
		t.Fatal(err)
	}
	backup, err := ca.BackupKey(t.Context(), "moving", nil)
	if err != nil {
		t.Fatal(err)
	}
	restored, err := cb.RestoreKey(t.Context(), azkeys.RestoreKeyParameters{KeyBackup: backup.Value}, nil)
	if err != nil {
		t.Fatalf("restore into another vault: %v", err)
	}
	if want := b.URL() + "/keys/moving/" + kb.Key.KID.Version(); string(*restored.Key.KID) != want || !bytes.Equal(restored.Key.X, kb.Key.X) {
		t.Fatalf("restored kid %s, want %s", *restored.Key.KID, want)
	}
	wantVerify(t, cb, "moving", azkeys.SignatureAlgorithmES256K, digest, sig.Result, true)
}

// TestRestoreRefusesBadBlobs: a blob that was tampered with, cut short or
// made up answers 400, and restores nothing.
func TestRestoreRefusesBadBlobs(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	createKey(t, c, "k", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM)})
	backup, err := c.BackupKey(t.Context(), "k", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteKey(t.Context(), "k", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedKey(t.Context(), "k", nil); err != nil {
		t.Fatal(err)
	}
	for name, blob := range map[string][]byte{
		"tampered":  tampered(backup.Value),
		"last byte": append(append([]byte(nil), backup.Value[:len(backup.Value)-1]...), backup.Value[len(backup.Value)-1]^1),
		"cut short": backup.Value[:len(backup.Value)/2],
		"made up":   []byte("&AzureKeyVaultKeyBackupV1.microsoft.com" + "eyJhbGciOiJkaXIifQ"),
		"empty":     {},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := c.RestoreKey(t.Context(), azkeys.RestoreKeyParameters{KeyBackup: blob}, nil)
			wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
			if msg := errorMessage(t, err); msg != "Cannot decrypt backup blob." && msg != "Property value is required." {
				t.Fatalf("message %q", msg)
			}
		})
	}
	_, err = c.GetKey(t.Context(), "k", "", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
}

// TestBackupKeyLivesInTheStateFile: the backup key is the one the state
// file holds, so a blob made by one process restores in another started
// from the same file, and not in a vault with another key.
func TestBackupKeyLivesInTheStateFile(t *testing.T) {
	cfg := persistedConfig(t.TempDir())
	foreign := bytes.Repeat([]byte{0x5a}, backupKeySize) // not this process's key
	st := stateFile{Format: stateFormat, BackupKey: foreign}
	b, _ := json.Marshal(st)
	if err := os.WriteFile(cfg.StateFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// A blob as another process, whose key the file holds, made it.
	k := keyWithOneVersion(t, "from-elsewhere")
	plain, _ := json.Marshal(backupContent{Format: stateFormat, Key: k.state()})
	blob := sealBackup(foreign, plain)

	srv := start(t, cfg)
	c := newClient(t, srv)
	if _, err := c.RestoreKey(t.Context(), azkeys.RestoreKeyParameters{KeyBackup: blob}, nil); err != nil {
		t.Fatalf("restore with the state file's key: %v", err)
	}
	srv2 := restart(t, srv, cfg)
	if !bytes.Equal(srv2.vault.backupKey, foreign) {
		t.Fatal("the backup key did not survive the restart")
	}
	_, err := newClient(t, start(t, Config{})).RestoreKey(t.Context(), azkeys.RestoreKeyParameters{KeyBackup: blob}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
}

func keyWithOneVersion(t *testing.T, name string) *key {
	t.Helper()
	m, err := generate(createParams{Kty: "EC-HSM", Crv: "P-384"})
	if err != nil {
		t.Fatal(err)
	}
	v := newVersion(m, []string{"sign", "verify"}, &attrsIn{Exp: to.Ptr[int64](2_000_000_000)}, map[string]string{"a": "b"}, 1_700_000_000)
	vt := newVault()
	return vt.addVersion(name, v)
}

// TestFormatOneStateFileLoads: a state file an emulator before format 2
// wrote still loads, keeps every key, and is written back as format 2
// with a backup key.
func TestFormatOneStateFileLoads(t *testing.T) {
	file := fuzzSeedBytes(t, "testdata/fuzz/FuzzDecodeState/vault-written")
	if !bytes.Contains(file, []byte(`"format":1`)) {
		t.Fatal("the seed is no longer a format 1 file")
	}
	cfg := persistedConfig(t.TempDir())
	if err := os.WriteFile(cfg.StateFile, file, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := start(t, cfg)
	srv.Grant() // the seed was saved revoked
	c := newClient(t, srv)
	if _, err := c.GetKey(t.Context(), "aes", "", nil); err != nil {
		t.Fatalf("a key of the format 1 file: %v", err)
	}
	var st stateFile
	written, _ := os.ReadFile(cfg.StateFile)
	if err := json.Unmarshal(written, &st); err != nil || st.Format != stateFormat || len(st.BackupKey) != backupKeySize {
		t.Fatalf("written back as format %d with a %d-byte backup key (%v)", st.Format, len(st.BackupKey), err)
	}
}

// fuzzSeedBytes reads the []byte of a one-argument fuzz corpus file.
func fuzzSeedBytes(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if len(lines) != 2 || lines[0] != "go test fuzz v1" {
		t.Fatalf("%s is not a one-argument corpus file", path)
	}
	s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return []byte(s)
}
