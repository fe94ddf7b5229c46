package main

import (
	"strings"
	"testing"
)

// TestCLIVaultKeyLifecycle drives a key through every vault subcommand
// against the emulator through azkeys, as it would against Azure.
func TestCLIVaultKeyLifecycle(t *testing.T) {
	e := newCLIEnv(t, false)
	var created keyView
	e.mustJSON(&created, "vault", "create-key", "cmk", "--size", "3072")
	if !strings.HasPrefix(created.KID, e.keyURL("cmk")+"/") || created.Kty != "RSA" || !created.Enabled {
		t.Fatalf("create-key printed %+v, want an enabled RSA version of %s", created, e.keyURL("cmk"))
	}
	v1 := versionOf(created.KID)

	out := e.must("vault", "rotate", "cmk")
	if !strings.Contains(out, e.keyURL("cmk")+"/") || strings.Contains(out, v1) {
		t.Fatalf("rotate printed %q, want a new version id", out)
	}
	var versions []keyView
	e.mustJSON(&versions, "vault", "show", "cmk")
	if len(versions) != 2 {
		t.Fatalf("show lists %d versions after a rotate, want 2: %+v", len(versions), versions)
	}

	var v keyView
	e.mustJSON(&v, "vault", "disable", "cmk", "--version", v1)
	if v.Enabled || versionOf(v.KID) != v1 {
		t.Fatalf("disable --version %s printed %+v", v1, v)
	}
	if text := e.must("vault", "show", "cmk"); !strings.Contains(text, v1+"  enabled=false") {
		t.Fatalf("show after disabling %s:\n%s", v1, text)
	}
	e.must("vault", "enable", "cmk", "--version", v1)
	if text := e.must("vault", "show", "cmk"); strings.Contains(text, "enabled=false") {
		t.Fatalf("show after enabling again:\n%s", text)
	}

	if out := e.must("vault", "delete", "cmk"); !strings.Contains(out, "cmkd vault recover cmk") {
		t.Fatalf("delete printed %q; want how to undo it", out)
	}
	e.wantExit(exitNotFound, "vault", "rotate", "cmk")
	var recovered keyView
	e.mustJSON(&recovered, "vault", "recover", "cmk")
	if !strings.HasPrefix(recovered.KID, e.keyURL("cmk")+"/") {
		t.Fatalf("recover printed %+v", recovered)
	}
	e.must("vault", "delete", "cmk")
	if errs := e.wantExit(exitError, "vault", "purge", "cmk"); !strings.Contains(errs, "purge protection") {
		t.Fatalf("purge under purge protection says %q; want the refusal", errs)
	}
	if err := e.kv.SetSoftDelete(false, 0); err != nil { // a test vault: purge protection off
		t.Fatal(err)
	}
	e.must("vault", "purge", "cmk")
	if errs := e.wantExit(exitNotFound, "vault", "recover", "cmk"); !strings.Contains(errs, "404") || strings.Count(errs, "\n") != 1 {
		t.Fatalf("recover of a purged key says %q; want one line with the 404", errs)
	}
	e.wantExit(exitNotFound, "vault", "show", "nope")
}

func TestCLIVaultCreateOctHSM(t *testing.T) {
	e := newCLIEnv(t, false)
	var kv keyView
	e.mustJSON(&kv, "vault", "create-key", "aes", "--kty", "oct-HSM")
	if kv.Kty != "oct-HSM" {
		t.Fatalf("create-key --kty oct-HSM printed %+v", kv)
	}
	if errs := e.wantExit(exitUsage, "vault", "create-key", "ec", "--kty", "EC"); !strings.Contains(errs, "RSA, RSA-HSM or oct-HSM") {
		t.Fatalf("create-key --kty EC says %q; EC keys cannot wrap", errs)
	}
	// An oct-HSM key is a Managed HSM's: outside one it is refused.
	if errs := e.wantExit(exitKeyType, "tenant", "add", "acme", "--key", e.keyURL("aes")); !strings.Contains(errs, "Managed HSM") {
		t.Fatalf("an oct-HSM key in a vault was refused with %q", errs)
	}
	// In a Managed HSM (the emulated vault listed as one) a tenant on an
	// AES key wraps remotely: its first DEK proves the key works.
	e.cfg.KeyVault.ManagedHSMs = []string{e.kv.URL()}
	e.writeConfig()
	e.must("tenant", "add", "acme", "--key", e.keyURL("aes"))
	e.must("put", "acme", "k", "--value", "v")
	if got := e.must("get", "acme", "k"); got != "v" {
		t.Fatalf("get on an oct-HSM tenant printed %q", got)
	}
}

// TestCLIVaultRevokeGrant: revoke makes Key Vault refuse cmkd (403, exit 1
// with a hint at the role), grant restores access.
func TestCLIVaultRevokeGrant(t *testing.T) {
	e := newCLIEnv(t, false)
	e.createKey("cmk")
	var r map[string]bool
	e.mustJSON(&r, "vault", "revoke")
	if !r["revoked"] {
		t.Fatalf("revoke printed %v", r)
	}
	if errs := e.wantExit(exitError, "vault", "show", "cmk"); !strings.Contains(errs, "403") || !strings.Contains(errs, "role") {
		t.Fatalf("show while revoked says %q; want the 403 and a hint at the role", errs)
	}
	if out := e.must("vault", "grant"); !strings.Contains(out, "granted") {
		t.Fatalf("grant printed %q", out)
	}
	e.must("vault", "show", "cmk")
}

func TestCLIVaultRevokeIsEmulatorOnly(t *testing.T) {
	e := newCLIEnv(t, false)
	e.cfg.KeyVault.Emulator = false
	e.writeConfig()
	if errs := e.wantExit(exitError, "vault", "revoke"); !strings.Contains(errs, "role assignment") {
		t.Fatalf("revoke against a real vault says %q", errs)
	}
}

// TestCLIVaultNeedsVaultURL: without a dev vault in the config, --vault is
// required (exit 2); with it, the command reaches that vault.
func TestCLIVaultNeedsVaultURL(t *testing.T) {
	e := newCLIEnv(t, false)
	url := e.cfg.Dev.KeyVault
	e.cfg.Dev.KeyVault = ""
	e.writeConfig()
	if errs := e.wantExit(exitUsage, "vault", "create-key", "cmk"); !strings.Contains(errs, "--vault") {
		t.Fatalf("create-key without a vault says %q", errs)
	}
	if out := e.must("vault", "create-key", "cmk", "--vault", url); !strings.Contains(out, url+"/keys/cmk/") {
		t.Fatalf("create-key --vault printed %q", out)
	}
}
