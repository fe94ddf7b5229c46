package keyvault

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestCAFileReused: a restarted emulator keeps the CA, byte for byte, that
// clients were given, with its key readable by the owner only.
func TestCAFileReused(t *testing.T) {
	cfg := persistedConfig(t.TempDir())
	srv := start(t, cfg)
	first, err := os.ReadFile(cfg.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	srv2 := restart(t, srv, cfg)
	again, err := os.ReadFile(cfg.CAFile)
	if err != nil || !bytes.Equal(first, again) || !bytes.Equal(srv2.CAPEM(), first) {
		t.Fatalf("the CA changed across a restart (%v)", err)
	}
	checkFileModes(t, cfg)
}

// TestCAFileWithoutKeyIsReplaced: a CA without its key cannot sign a new
// leaf, so a fresh pair is made and written.
func TestCAFileWithoutKeyIsReplaced(t *testing.T) {
	cfg := persistedConfig(t.TempDir())
	srv := start(t, cfg)
	old := srv.CAPEM()
	srv.Close()
	os.Remove(cfg.CAFile + ".key")
	srv2 := start(t, cfg)
	onDisk, _ := os.ReadFile(cfg.CAFile)
	if bytes.Equal(srv2.CAPEM(), old) || !bytes.Equal(onDisk, srv2.CAPEM()) {
		t.Fatal("want a new CA, written to CAFile")
	}
	if _, err := os.Stat(cfg.CAFile + ".key"); err != nil {
		t.Fatalf("new CA key not written: %v", err)
	}
}

// TestMismatchedCAFailsStart: a certificate with another CA's key is
// refused with the way out, not silently replaced.
func TestMismatchedCAFailsStart(t *testing.T) {
	a, b := persistedConfig(t.TempDir()), persistedConfig(t.TempDir())
	start(t, a).Close()
	start(t, b).Close()
	key, _ := os.ReadFile(b.CAFile + ".key")
	os.WriteFile(a.CAFile+".key", key, 0o600)
	_, err := Start(Config{CAFile: a.CAFile})
	if err == nil || !strings.Contains(err.Error(), a.CAFile) || !strings.Contains(err.Error(), "delete") {
		t.Fatalf("start with a foreign CA key: %v, want an error naming the file and the fix", err)
	}
}
