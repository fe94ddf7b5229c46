package eventgridtopic_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"

	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
)

// testKey is shaped like a real topic key: base64 of 32 bytes.
var testKey = base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))

func start(t *testing.T, cfg eventgridtopic.Config) *eventgridtopic.Server {
	t.Helper()
	if cfg.Key == "" && !cfg.AcceptBearer {
		cfg.Key = testKey
	}
	s, err := eventgridtopic.Start(cfg)
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func httpClient(s *eventgridtopic.Server) *http.Client {
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool(), MinVersion: tls.VersionTLS12}}}
}

// clientOptions trusts the emulator and does not retry, so that each call is
// one request unless a test asks for retries.
func clientOptions(s *eventgridtopic.Server) *azeventgrid.ClientOptions {
	return &azeventgrid.ClientOptions{ClientOptions: azcore.ClientOptions{
		Transport: httpClient(s),
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

func keyClient(t *testing.T, s *eventgridtopic.Server, key string) *azeventgrid.Client {
	t.Helper()
	c, err := azeventgrid.NewClientWithSharedKeyCredential(s.URL(), azcore.NewKeyCredential(key), clientOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sasClient(t *testing.T, s *eventgridtopic.Server, sas string) *azeventgrid.Client {
	t.Helper()
	c, err := azeventgrid.NewClientWithSAS(s.URL(), azcore.NewSASCredential(sas), clientOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// generateSAS signs a token as the azeventgrid tests do.
func generateSAS(endpoint, key string, expiry time.Time) string {
	text := fmt.Sprintf("r=%s&e=%s", url.QueryEscape(endpoint), url.QueryEscape(expiry.UTC().Format(time.RFC3339)))
	decoded, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		panic(err)
	}
	h := hmac.New(sha256.New, decoded)
	h.Write([]byte(text))
	return text + "&s=" + url.QueryEscape(base64.StdEncoding.EncodeToString(h.Sum(nil)))
}

// staticToken is a token credential that hands out a fixed token and
// remembers the scopes asked for.
type staticToken struct {
	token string

	mu     sync.Mutex
	scopes []string
}

func (c *staticToken) GetToken(_ context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.scopes = append(c.scopes, opts.Scopes...)
	return azcore.AccessToken{Token: c.token, ExpiresOn: time.Now().Add(time.Hour)}, nil
}

func (c *staticToken) Scopes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.scopes...)
}

// requireResponseError checks err is the service error the client surfaces.
func requireResponseError(t *testing.T, err error, status int, code string) *azcore.ResponseError {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("error %v: want *azcore.ResponseError %d %s", err, status, code)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("response error %d %q, want %d %q", re.StatusCode, re.ErrorCode, status, code)
	}
	return re
}

// postRaw publishes a body as is, for what the client cannot send.
func postRaw(t *testing.T, s *eventgridtopic.Server, contentType, body string, header http.Header) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL()+"?api-version=2018-01-01", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = header.Clone()
	if req.Header == nil {
		req.Header = http.Header{}
	}
	req.Header.Set("Content-Type", contentType)
	resp, err := httpClient(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func keyHeader() http.Header { return http.Header{"Aeg-Sas-Key": {testKey}} }
