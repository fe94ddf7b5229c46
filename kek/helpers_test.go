package kek

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
)

// env is one emulated vault, an admin client that shapes its keys, and the
// kek Client under test.
type env struct {
	srv   *keyvault.Server
	admin *azkeys.Client
	kek   *Client
	reg   *prometheus.Registry
}

func newEnv(t *testing.T, tune func(*Config)) *env {
	t.Helper()
	return newEnvWith(t, keyvault.Config{ThrottleLimit: -1}, tune)
}

// newEnvWith is newEnv with an emulator configured by kv.
func newEnvWith(t *testing.T, kv keyvault.Config, tune func(*Config)) *env {
	t.Helper()
	srv, err := keyvault.Start(kv)
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	admin, err := azkeys.NewClient(srv.URL(), StaticToken("admin"), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CAPool()}}},
			Retry:     policy.RetryOptions{MaxRetries: -1},
		},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatalf("admin client: %v", err)
	}
	e := &env{srv: srv, admin: admin, reg: prometheus.NewRegistry()}
	cfg := Config{
		Credential:                           StaticToken("cmkd"),
		RootCAs:                              srv.CAPool(),
		DisableChallengeResourceVerification: true,
		Policy:                               VaultPolicy{AllowLoopback: true},
		RetryDelay:                           time.Millisecond,
		MaxRetryDelay:                        20 * time.Millisecond,
		Registerer:                           e.reg,
	}
	if tune != nil {
		tune(&cfg)
	}
	if e.kek, err = New(cfg); err != nil {
		t.Fatalf("new: %v", err)
	}
	return e
}

func ops(o ...azkeys.KeyOperation) []*azkeys.KeyOperation {
	out := make([]*azkeys.KeyOperation, len(o))
	for i := range o {
		out[i] = &o[i]
	}
	return out
}

var wrapOps = []azkeys.KeyOperation{azkeys.KeyOperationWrapKey, azkeys.KeyOperationUnwrapKey}

// create makes a key and returns its versioned id.
func (e *env) create(t *testing.T, name string, kty azkeys.KeyType, o ...azkeys.KeyOperation) cmkd.KeyID {
	t.Helper()
	if o == nil {
		o = wrapOps
	}
	p := azkeys.CreateKeyParameters{Kty: &kty, KeyOps: ops(o...)}
	if kty == azkeys.KeyTypeOctHSM {
		size := int32(256)
		p.KeySize = &size
	}
	resp, err := e.admin.CreateKey(t.Context(), name, p, nil)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return e.id(t, string(*resp.Key.KID))
}

func (e *env) rotate(t *testing.T, name string) cmkd.KeyID {
	t.Helper()
	resp, err := e.admin.RotateKey(t.Context(), name, nil)
	if err != nil {
		t.Fatalf("rotate %s: %v", name, err)
	}
	return e.id(t, string(*resp.Key.KID))
}

func (e *env) update(t *testing.T, id cmkd.KeyID, attrs azkeys.KeyAttributes) {
	t.Helper()
	if _, err := e.admin.UpdateKey(t.Context(), id.Name, id.Version, azkeys.UpdateKeyParameters{KeyAttributes: &attrs}, nil); err != nil {
		t.Fatalf("update %s: %v", id, err)
	}
}

func (e *env) id(t *testing.T, kid string) cmkd.KeyID {
	t.Helper()
	id, err := cmkd.ParseKeyID(kid)
	if err != nil {
		t.Fatalf("kid %q: %v", kid, err)
	}
	return id
}

// url is the versionless id of name in this vault.
func (e *env) url(name string) cmkd.KeyID { return cmkd.MustParseKeyID(e.srv.URL() + "/keys/" + name) }

func ptr[T any](v T) *T { return &v }

func dek(b byte) []byte {
	d := make([]byte, 32)
	for i := range d {
		d[i] = b + byte(i)
	}
	return d
}

func policyOptions() policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{"https://vault.azure.net/.default"}}
}
