package kek

import (
	"bytes"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
)

func TestVaultPolicy(t *testing.T) {
	sovereign := VaultPolicy{DNSSuffixes: []string{".vault.azure.cn", ".vault.usgovcloudapi.net"}}
	listed := VaultPolicy{Vaults: []string{"https://Listed.vault.azure.net:443/", "other.example.com", "https://127.0.0.1:8443"}}
	for _, tt := range []struct {
		policy VaultPolicy
		vault  string
		field  string // "" when allowed
	}{
		{VaultPolicy{}, "https://myvault.vault.azure.net", ""},
		{VaultPolicy{}, "https://myhsm.managedhsm.azure.net", ""},
		{VaultPolicy{}, "https://myvault.vault.azure.net:8443", "Vaults"},
		{VaultPolicy{}, "https://vault.azure.net", "DNSSuffixes"},
		{VaultPolicy{}, "https://myvault.vault.azure.net.evil.example.com", "DNSSuffixes"},
		{VaultPolicy{}, "https://evilvault.azure.net", "DNSSuffixes"},
		{VaultPolicy{}, "https://myvault.vault.azure.cn", "DNSSuffixes"},
		{VaultPolicy{}, "https://10.0.0.5", "DNSSuffixes"},
		{VaultPolicy{}, "https://0.0.0.0:8443", "DNSSuffixes"},
		{VaultPolicy{}, "https://127.0.0.1:8443", "AllowLoopback"},
		{VaultPolicy{}, "https://[::1]:8443", "AllowLoopback"},
		{VaultPolicy{}, "https://localhost:8443", "AllowLoopback"},
		{VaultPolicy{AllowLoopback: true}, "https://127.0.0.1:8443", ""},
		{VaultPolicy{AllowLoopback: true}, "https://127.9.9.9", ""},
		{VaultPolicy{AllowLoopback: true}, "https://[::1]:8443", ""},
		{VaultPolicy{AllowLoopback: true}, "https://localhost:1", ""},
		{VaultPolicy{AllowLoopback: true}, "https://evil.example.com", "DNSSuffixes"},
		{sovereign, "https://myvault.vault.azure.cn", ""},
		{sovereign, "https://myvault.vault.usgovcloudapi.net", ""},
		{sovereign, "https://myvault.vault.azure.net", "DNSSuffixes"},
		{listed, "https://listed.vault.azure.net", ""},
		{listed, "https://other.example.com", ""},
		{listed, "https://127.0.0.1:8443", ""},
		{listed, "https://127.0.0.1:8444", "Vaults"},
		{listed, "https://unlisted.vault.azure.net", "Vaults"},
		{VaultPolicy{Vaults: listed.Vaults, AllowLoopback: true}, "https://127.0.0.1:1", "Vaults"},
	} {
		vault, err := cmkd.ParseVault(tt.vault)
		if err != nil {
			t.Fatal(err)
		}
		err = newVaultPolicy(tt.policy).check(vault)
		var na *VaultNotAllowedError
		switch {
		case tt.field == "" && err != nil:
			t.Errorf("%+v refuses %s: %v", tt.policy, vault, err)
		case tt.field != "" && (!errors.As(err, &na) || !errors.Is(err, ErrVaultNotAllowed) || na.Field != tt.field):
			t.Errorf("%+v: %s gives %v, want a refusal naming %s", tt.policy, vault, err, tt.field)
		case tt.field != "" && !strings.Contains(err.Error(), strings.TrimPrefix(vault, "https://")):
			t.Errorf("refusal %q does not name the host", err)
		}
	}
}

func TestVaultPolicyValidate(t *testing.T) {
	for _, p := range []VaultPolicy{
		{DNSSuffixes: []string{"vault.azure.cn"}}, {DNSSuffixes: []string{".cn"}}, {DNSSuffixes: []string{".vault..cn"}},
		{DNSSuffixes: []string{".vault_x.cn"}},
	} {
		if err := (Config{Credential: StaticToken("t"), Policy: p}).Validate(); err == nil || !strings.Contains(err.Error(), "DNSSuffixes") {
			t.Errorf("Validate(%+v) = %v, want it to name DNSSuffixes", p, err)
		}
	}
	if err := (VaultPolicy{Vaults: []string{"http://plain.example.com"}}).Validate(); err == nil || !strings.Contains(err.Error(), "Vaults") {
		t.Errorf("Validate of a plain-HTTP vault = %v, want it to name Vaults", err)
	}
	ok := VaultPolicy{DNSSuffixes: []string{".vault.azure.cn", ".managedhsm.usgovcloudapi.net"}, Vaults: []string{"myvault.vault.azure.net"}}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v) = %v", ok, err)
	}
}

// countingListener records the connections made to it.
type countingListener struct {
	net.Listener
	from chan string // remote address of each accepted connection
}

func newCountingListener(t *testing.T) *countingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &countingListener{Listener: ln, from: make(chan string, 64)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			l.from <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close() })
	return l
}

// accepted counts the connections made before now: it connects itself and
// counts what was accepted ahead of that, so nothing still queued is missed.
func (l *countingListener) accepted(t *testing.T) int {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for n := 0; ; n++ {
		select {
		case from := <-l.from:
			if from == c.LocalAddr().String() {
				return n
			}
		case <-time.After(10 * time.Second):
			t.Fatal("own connection not accepted")
		}
	}
}

// TestCallsOutsidePolicyMakeNoConnection: every way into Key Vault refuses
// a vault outside the policy, and none of them connects to it.
func TestCallsOutsidePolicyMakeNoConnection(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.Policy = VaultPolicy{Vaults: []string{"https://127.0.0.1:1"}} })
	l := newCountingListener(t)
	vault := "https://" + l.Addr().String()
	key := cmkd.MustParseKeyID(vault + "/keys/k")
	ver := key.At("0123456789abcdef0123456789abcdef")
	ctx := t.Context()
	calls := map[string]func() error{
		"Probe": func() error { _, err := e.kek.Probe(ctx, key); return err },
		"Wrap":  func() error { _, err := e.kek.Wrap(ctx, key, dek(1)); return err },
		"Unwrap": func() error {
			_, err := e.kek.Unwrap(ctx, cmkd.Wrapped{KID: ver, Alg: algRSAOAEP256, Value: []byte{1}})
			return err
		},
		"Versions": func() error { _, err := e.kek.Versions(ctx, key); return err },
		"WrapTarget": func() error {
			_, err := e.kek.WrapTarget(ctx, KeyState{Key: ver, Outcome: Disabled})
			return err
		},
		"CreateKey":  func() error { _, err := e.kek.CreateKey(ctx, vault, "k", string(azkeys.KeyTypeRSA), 0); return err },
		"RotateKey":  func() error { _, err := e.kek.RotateKey(ctx, key); return err },
		"SetEnabled": func() error { _, err := e.kek.SetEnabled(ctx, key, false); return err },
		"DeleteKey":  func() error { _, err := e.kek.DeleteKey(ctx, key); return err },
		"RecoverKey": func() error { _, err := e.kek.RecoverKey(ctx, key); return err },
		"PurgeKey":   func() error { return e.kek.PurgeKey(ctx, key) },
	}
	for name, call := range calls {
		err := call()
		if !errors.Is(err, ErrVaultNotAllowed) || !strings.Contains(err.Error(), l.Addr().String()) {
			t.Errorf("%s = %v, want ErrVaultNotAllowed naming %s", name, err, l.Addr())
		}
	}
	if n := l.accepted(t); n != 0 {
		t.Fatalf("%d connection(s) to a vault outside the policy", n)
	}
}

// TestTransportFailureSaysOnlyUnavailable: the message of a failure to
// reach the vault names no network detail; errors.As still reaches it, and
// the log tells the operator.
func TestTransportFailureSaysOnlyUnavailable(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	e := newEnv(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	key := cmkd.MustParseKeyID("https://" + l.Addr().String() + "/keys/k")
	l.Close()
	st, err := e.kek.Probe(t.Context(), key)
	if err != nil || st.Outcome != Unreachable {
		t.Fatalf("probe = %s %v", st.Outcome, err)
	}
	if got, want := st.Err.Error(), "probe "+key.String()+": key vault unavailable"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	var op *net.OpError
	if !errors.As(st.Err, &op) || !errors.Is(st.Err, ErrUnavailable) {
		t.Errorf("cause not reachable from %v", st.Err)
	}
	mu.Lock()
	defer mu.Unlock()
	if s := logs.String(); !strings.Contains(s, "key vault unreachable") || !strings.Contains(s, "connection refused") ||
		strings.Count(s, "key vault unreachable") != 1 {
		t.Errorf("want one warning with the cause, logged:\n%s", s)
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
