package main

import (
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// TestCLITenantLifecycle: add makes the first DEK under the key's current
// version at once; list and show report it; remove refuses while records
// exist unless --force; a removed tenant is not found (exit 4).
func TestCLITenantLifecycle(t *testing.T) {
	e := newCLIEnv(t, false)
	v1 := e.createKey("cmk")

	var added tenantView
	e.mustJSON(&added, "tenant", "add", "acme", "--key", e.keyURL("cmk"))
	if added.ID != "acme" || added.State != store.StateActive || added.Key.String() != e.keyURL("cmk") {
		t.Fatalf("tenant add printed %+v, want acme active on %s", added, e.keyURL("cmk"))
	}
	if out := e.must("tenant", "add", "globex", "--key", e.keyURL("cmk")); !strings.Contains(out, "globex added") {
		t.Fatalf("tenant add text: %q", out)
	}

	var shown tenantView
	e.mustJSON(&shown, "tenant", "show", "acme")
	if shown.DEKs[v1] != 1 || len(shown.DEKs) != 1 {
		t.Fatalf("acme's DEKs by version %v, want its first DEK under %s", shown.DEKs, v1)
	}
	if shown.KeyDEKs[v1] != 2 {
		t.Fatalf("key's DEKs by version %v, want both tenants' first DEKs under %s", shown.KeyDEKs, v1)
	}
	text := e.must("tenant", "show", "acme")
	for _, want := range []string{"tenant   acme", "state    active", e.keyURL("cmk"), v1 + "  1", v1 + "  2"} {
		if !strings.Contains(text, want) {
			t.Errorf("tenant show text lacks %q:\n%s", want, text)
		}
	}

	var list []tenantView
	e.mustJSON(&list, "tenant", "list")
	if len(list) != 2 || list[0].ID != "acme" || list[1].ID != "globex" {
		t.Fatalf("tenant list %+v, want acme and globex", list)
	}
	if text := e.must("tenant", "list"); !strings.HasPrefix(text, "TENANT") || !strings.Contains(text, "globex") {
		t.Fatalf("tenant list text:\n%s", text)
	}

	e.must("put", "acme", "k1", "--value", "v")
	if errs := e.wantExit(exitError, "tenant", "remove", "acme"); !strings.Contains(errs, "--force") {
		t.Fatalf("remove of a tenant with records says %q; want a hint at --force", errs)
	}
	e.must("tenant", "remove", "acme", "--force")
	e.wantExit(exitNotFound, "tenant", "show", "acme")
	e.wantExit(exitNotFound, "get", "acme", "k1")
	e.must("tenant", "remove", "globex") // no records: no --force needed
	if out := e.must("tenant", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("tenant list after removing all: %q, want []", out)
	}
}

// TestCLITenantAddRefusesUnusableKey: a key that cannot wrap is refused when
// the tenant is added, and no half-added tenant is left behind.
func TestCLITenantAddRefusesUnusableKey(t *testing.T) {
	e := newCLIEnv(t, false)
	errs := e.wantExit(exitNotFound, "tenant", "add", "acme", "--key", e.keyURL("nope"))
	if !strings.Contains(errs, e.keyURL("nope")) {
		t.Fatalf("refusal %q does not name the key", errs)
	}
	e.createKey("off")
	e.must("vault", "disable", "off")
	if _, errs, code := e.run("tenant", "add", "acme", "--key", e.keyURL("off")); code == exitOK || !strings.Contains(errs, "disabled") {
		t.Fatalf("add on a disabled key: exit %d, %q; want a failure naming the disabled key", code, errs)
	}
	e.wantExit(exitError, "tenant", "add", "bad/id", "--key", e.keyURL("off"))
	e.wantExit(exitError, "tenant", "add", "acme", "--key", "http://plain/keys/x")
	if out := e.must("tenant", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Fatalf("tenants after refused adds: %s", out)
	}
}

func TestCLITenantShowSealed(t *testing.T) {
	e := newCLIEnv(t, false)
	e.createKey("cmk")
	e.must("tenant", "add", "acme", "--key", e.keyURL("cmk"))
	before := time.Now().Add(-time.Second)
	if err := e.deps().store.Seal(t.Context(), "acme", "key disabled", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	var v tenantView
	e.mustJSON(&v, "tenant", "show", "acme")
	if v.State != store.StateSealed || v.Reason != "key disabled" || v.Since == nil || v.Since.Before(before) {
		t.Fatalf("sealed tenant shows %+v, want sealed, reason and since", v)
	}
	if text := e.must("tenant", "show", "acme"); !strings.Contains(text, "sealed (key disabled since ") {
		t.Fatalf("tenant show text of a sealed tenant:\n%s", text)
	}
	if text := e.must("tenant", "list"); !strings.Contains(text, "key disabled") {
		t.Fatalf("tenant list does not show the seal reason:\n%s", text)
	}
}

// acceptRecorder is a TCP listener that counts the connections made to it.
type acceptRecorder struct {
	ln       net.Listener
	accepted chan net.Conn
}

func newAcceptRecorder(t *testing.T) *acceptRecorder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &acceptRecorder{ln: ln, accepted: make(chan net.Conn, 64)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(r.accepted)
				return
			}
			r.accepted <- c
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for c := range r.accepted {
			c.Close()
		}
	})
	return r
}

// before counts the connections accepted before now: it connects itself
// and counts what the listener accepted ahead of that marker, so no
// connection still in the accept queue is missed.
func (r *acceptRecorder) before(t *testing.T) int {
	t.Helper()
	marker, err := net.Dial("tcp", r.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer marker.Close()
	n := 0
	for {
		select {
		case c := <-r.accepted:
			if c.RemoteAddr().String() == marker.LocalAddr().String() {
				c.Close()
				return n
			}
			c.Close()
			n++
		case <-time.After(10 * time.Second):
			t.Fatal("the marker connection was not accepted")
		}
	}
}

// TestCLITenantAddRefusesVaultOutsidePolicy: a key URL decides where cmkd
// connects, and customers may choose it, so a vault the policy does not
// allow is refused before any connection is made, naming the host and the
// config field that would allow it.
func TestCLITenantAddRefusesVaultOutsidePolicy(t *testing.T) {
	for _, tc := range []struct {
		name  string
		shape func(e *cliEnv)
		field string
	}{
		{"not in keyvault.vaults", func(e *cliEnv) { e.cfg.KeyVault.Vaults = []string{e.kv.URL()} }, "keyvault.vaults"},
		{"loopback without keyvault.emulator", func(e *cliEnv) { e.cfg.KeyVault.Emulator = false }, "keyvault.emulator"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newCLIEnv(t, false)
			tc.shape(e)
			e.writeConfig()
			rec := newAcceptRecorder(t)
			host := rec.ln.Addr().String()
			errs := e.wantExit(exitVaultPolicy, "tenant", "add", "acme", "--key", "https://"+host+"/keys/cmk")
			if !strings.Contains(errs, host) || !strings.Contains(errs, "not allowed") || !strings.Contains(errs, tc.field) {
				t.Errorf("refusal says %q; want it to name %s, say not allowed, and name %s", errs, host, tc.field)
			}
			if n := rec.before(t); n != 0 {
				t.Errorf("cmkd made %d connection(s) to a vault outside the policy", n)
			}
			if out := e.must("tenant", "list", "--json"); strings.TrimSpace(out) != "[]" {
				t.Fatalf("tenants after the refused add: %s", out)
			}
		})
	}
	e := newCLIEnv(t, false)
	for _, tc := range []struct{ key, host, field string }{
		{"https://evil.example.com/keys/cmk", "evil.example.com", "keyvault.dns_suffixes"},
		{"https://myvault.vault.azure.net.evil.example.com/keys/cmk", "myvault.vault.azure.net.evil.example.com", "keyvault.dns_suffixes"},
		{"https://myvault.vault.azure.net:8443/keys/cmk", "myvault.vault.azure.net:8443", "keyvault.vaults"},
	} {
		errs := e.wantExit(exitVaultPolicy, "tenant", "add", "acme", "--key", tc.key)
		if !strings.Contains(errs, tc.host) || !strings.Contains(errs, "not allowed") || !strings.Contains(errs, tc.field) {
			t.Errorf("add with %s says %q; want it to name %s, say not allowed, and name %s", tc.key, errs, tc.host, tc.field)
		}
	}
}

// TestCLITenantAddUnreachableVaultSaysNoMore: whether nothing listens, a
// plain HTTP server answers or the certificate is not trusted, a caller
// learns only that the vault is unavailable; anything more would let a
// customer map the network with key URLs. The detail goes to the log.
func TestCLITenantAddUnreachableVaultSaysNoMore(t *testing.T) {
	e := newCLIEnv(t, false)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	plain := httptest.NewServer(http.NotFoundHandler())
	defer plain.Close()
	untrusted := httptest.NewUnstartedServer(http.NotFoundHandler())
	untrusted.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshakes are expected
	untrusted.StartTLS()
	defer untrusted.Close()
	hosts := map[string]string{
		"closed port":           closed,
		"plain http":            strings.TrimPrefix(plain.URL, "http://"),
		"untrusted certificate": strings.TrimPrefix(untrusted.URL, "https://"),
	}
	said := map[string]string{}
	for name, host := range hosts {
		errs := e.wantExit(exitVaultOffline, "tenant", "add", "acme", "--key", "https://"+host+"/keys/cmk")
		var msg []string
		for line := range strings.Lines(errs) {
			if strings.HasPrefix(line, "cmkd: ") {
				msg = append(msg, strings.ReplaceAll(line, host, "HOST"))
			}
		}
		said[name] = strings.Join(msg, "")
		if !strings.Contains(said[name], "unavailable") {
			t.Errorf("%s: error %q does not say the vault is unavailable", name, said[name])
		}
	}
	if said["closed port"] != said["plain http"] || said["closed port"] != said["untrusted certificate"] {
		t.Fatalf("errors tell the failures apart:\n%q\n%q\n%q", said["closed port"], said["plain http"], said["untrusted certificate"])
	}
}
