package keyvault

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// staticToken is a credential that always hands out the same token.
type staticToken string

func (t staticToken) GetToken(context.Context, azpolicy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(t), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func start(t *testing.T, cfg Config) *Server {
	t.Helper()
	if cfg.ThrottleLimit == 0 {
		cfg.ThrottleLimit = -1
	}
	srv, err := Start(cfg)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return srv
}

func httpClient(srv *Server) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CAPool()}}}
}

// newClient is the real azkeys client, without retries so that error
// answers surface at once.
func newClient(t *testing.T, srv *Server) *azkeys.Client {
	t.Helper()
	c, err := srv.Client(staticToken("token"), azpolicy.RetryOptions{MaxRetries: -1})
	if err != nil {
		t.Fatalf("client: %v", err)
	}
	return c
}

func createKey(t *testing.T, c *azkeys.Client, name string, p azkeys.CreateKeyParameters) azkeys.KeyBundle {
	t.Helper()
	resp, err := c.CreateKey(t.Context(), name, p, nil)
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	return resp.KeyBundle
}

func ptr[T any](v T) *T { return &v }

// wantErr asserts a Key Vault error answer: status, code and innererror code.
func wantErr(t *testing.T, err error, status int, code, inner string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want ResponseError %d %s, got %v", status, code, err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("want %d %s, got %d %s", status, code, re.StatusCode, re.ErrorCode)
	}
	if got := innerCodeOf(t, re.RawResponse); got != inner {
		t.Fatalf("want innererror %q, got %q", inner, got)
	}
}

func innerCodeOf(t *testing.T, resp *http.Response) string {
	t.Helper()
	var body struct {
		Error struct {
			InnerError *struct{ Code string } `json:"innererror"`
		} `json:"error"`
	}
	// azcore has already read the body; it keeps a re-readable copy.
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("decode error body: %v", err)
	}
	if body.Error.InnerError == nil {
		return ""
	}
	return body.Error.InnerError.Code
}

// eventLog collects sink events for assertions.
type eventLog struct {
	mu  sync.Mutex
	evs []CloudEvent
	ch  chan struct{}
}

func newEventLog() *eventLog { return &eventLog{ch: make(chan struct{}, 1)} }

func (l *eventLog) sink(ev CloudEvent) {
	l.mu.Lock()
	l.evs = append(l.evs, ev)
	l.mu.Unlock()
	select {
	case l.ch <- struct{}{}:
	default:
	}
}

func (l *eventLog) all() []CloudEvent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]CloudEvent(nil), l.evs...)
}

// rawJSON sends an authenticated request without the SDK and decodes the
// JSON answer into out; it returns the status.
func rawJSON(t *testing.T, srv *Server, method, url, body string, out any) int {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer token")
	resp, err := httpClient(srv).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatalf("decode %s %s: %v", method, url, err)
		}
	}
	return resp.StatusCode
}
