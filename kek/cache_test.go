package kek

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
)

// holdFirstAnswer is an HTTPS proxy in front of the emulator that holds
// back the first successful answer to a GET of a key: the vault has read
// the key's state, but the answer reaches kek only after release.
type holdFirstAnswer struct {
	srv     *httptest.Server
	read    chan struct{} // closed once the vault answered the held GET
	release chan struct{} // close to deliver it
}

func newHoldFirstAnswer(t *testing.T, e *env) *holdFirstAnswer {
	t.Helper()
	target, err := url.Parse(e.srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	h := &holdFirstAnswer{read: make(chan struct{}), release: make(chan struct{})}
	var once sync.Once
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(r *httputil.ProxyRequest) { r.SetURL(target) },
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: e.srv.CAPool()}},
		ModifyResponse: func(resp *http.Response) error {
			if resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK ||
				!strings.HasPrefix(resp.Request.URL.Path, "/keys/") {
				return nil
			}
			hold := false
			once.Do(func() { hold = true })
			if hold {
				close(h.read)
				<-h.release
			}
			return nil
		},
	}
	h.srv = httptest.NewTLSServer(proxy)
	t.Cleanup(func() {
		select {
		case <-h.release:
		default:
			close(h.release)
		}
		h.srv.Close()
	})
	return h
}

// client is a kek Client that reaches the emulator through the proxy.
func (h *holdFirstAnswer) client(t *testing.T) *Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(h.srv.Certificate())
	c, err := New(Config{
		Credential: StaticToken("cmkd"), RootCAs: pool, DisableChallengeResourceVerification: true,
		Policy:     VaultPolicy{AllowLoopback: true},
		RetryDelay: time.Millisecond, MaxRetryDelay: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (h *holdFirstAnswer) url(name string) cmkd.KeyID {
	return cmkd.MustParseKeyID(h.srv.URL + "/keys/" + name)
}

// TestProbeIssuedBeforeDisableDoesNotLandAfter: a probe that read the key
// before it was disabled, but whose answer arrives after a newer probe
// found it disabled (or after the key was invalidated), must not make the
// cache say usable again: a local wrap would then ignore the disable for
// a whole ProbeFreshness.
func TestProbeIssuedBeforeDisableDoesNotLandAfter(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(t *testing.T, c *Client, key cmkd.KeyID)
	}{
		{"newer probe finds it disabled", func(t *testing.T, c *Client, key cmkd.KeyID) {
			if st, err := c.Probe(t.Context(), key); err != nil || st.Outcome != Disabled {
				t.Fatalf("probe after disable = %s %v", st.Outcome, err)
			}
		}},
		{"key invalidated", func(_ *testing.T, c *Client, key cmkd.KeyID) { c.Invalidate(key) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, nil)
			v1 := e.create(t, "k", azkeys.KeyTypeRSA)
			h := newHoldFirstAnswer(t, e)
			c := h.client(t)
			key := h.url("k")

			type answer struct {
				st  KeyState
				err error
			}
			slow := make(chan answer, 1)
			go func() {
				st, err := c.Probe(t.Context(), key)
				slow <- answer{st, err}
			}()
			select {
			case <-h.read:
			case <-time.After(10 * time.Second):
				t.Fatal("the first probe never reached the vault")
			}
			e.update(t, v1, azkeys.KeyAttributes{Enabled: ptr(false)})
			tc.after(t, c, key)
			close(h.release)
			if a := <-slow; a.err != nil || a.st.Outcome != Usable {
				t.Fatalf("the held probe = %s %v; want usable, as the vault read it", a.st.Outcome, a.err)
			}

			for _, id := range []cmkd.KeyID{key, key.At(v1.Version)} {
				if w, err := c.Wrap(t.Context(), id, dek(1)); !errors.Is(err, ErrDisabled) {
					t.Errorf("wrap %s after the disable = %v, %v; want ErrDisabled", id, w.KID, err)
				}
			}
		})
	}
}

// TestProbeCacheKeepsNewestIssue: answers land in any order; the cache
// keeps, per version and for which version is latest, what the most
// recently issued probe said, and a drop outranks every probe issued
// before it.
func TestProbeCacheKeepsNewestIssue(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	key := cmkd.MustParseKeyID("https://v.vault.azure.net/keys/k")
	v1, v2 := key.At("aaaa"), key.At("bbbb")
	rec := func(id cmkd.KeyID, o Outcome, issued int) *probeRecord {
		return &probeRecord{state: KeyState{Key: id, Outcome: o, ProbedAt: at(issued)}, issued: at(issued)}
	}
	type put struct {
		r      *probeRecord
		latest bool
	}
	type want struct {
		id      cmkd.KeyID
		version string // "" wants no record
		outcome Outcome
	}
	for _, tc := range []struct {
		name  string
		steps []any // put or a drop time (int)
		want  []want
	}{
		{"older versioned answer lands last", []any{
			put{rec(v1, Disabled, 2), false}, put{rec(v1, Usable, 1), false},
		}, []want{{v1, "aaaa", Disabled}}},
		{"older versionless answer lands after a newer versioned one", []any{
			put{rec(v1, Disabled, 2), false}, put{rec(v1, Usable, 1), true},
		}, []want{{v1, "aaaa", Disabled}, {key, "aaaa", Disabled}}},
		{"older versionless answer names an older latest", []any{
			put{rec(v2, Usable, 2), true}, put{rec(v1, Usable, 1), true},
		}, []want{{key, "bbbb", Usable}, {v1, "aaaa", Usable}, {v2, "bbbb", Usable}}},
		{"newer answers replace older ones", []any{
			put{rec(v1, Usable, 1), true}, put{rec(v1, Disabled, 2), true}, put{rec(v2, Usable, 3), true},
		}, []want{{key, "bbbb", Usable}, {v1, "aaaa", Disabled}}},
		{"a versioned answer refreshes the latest", []any{
			put{rec(v1, Usable, 1), true}, put{rec(v1, Disabled, 2), false},
		}, []want{{key, "aaaa", Disabled}}},
		{"drop outranks answers issued before it", []any{
			put{rec(v1, Usable, 1), true}, 3, put{rec(v1, Usable, 2), true}, put{rec(v2, Usable, 3), false},
		}, []want{{key, "", ""}, {v1, "", ""}, {v2, "", ""}}},
		{"answers issued after a drop count", []any{
			put{rec(v1, Usable, 1), true}, 3, put{rec(v1, Disabled, 4), true}, put{rec(v1, Usable, 2), true},
		}, []want{{key, "aaaa", Disabled}, {v1, "aaaa", Disabled}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := newProbeCache()
			for _, s := range tc.steps {
				switch s := s.(type) {
				case put:
					p.put(s.r, s.latest)
				case int:
					p.drop(key, at(s))
				}
			}
			for _, w := range tc.want {
				r := p.get(w.id, time.Hour, at(5))
				switch {
				case w.version == "" && r != nil:
					t.Errorf("get %s = %s %s, want nothing", w.id, r.state.Key.Version, r.state.Outcome)
				case w.version != "" && r == nil:
					t.Errorf("get %s = nothing, want %s %s", w.id, w.version, w.outcome)
				case w.version != "" && (r.state.Key.Version != w.version || r.state.Outcome != w.outcome):
					t.Errorf("get %s = %s %s, want %s %s", w.id, r.state.Key.Version, r.state.Outcome, w.version, w.outcome)
				}
			}
		})
	}
}
