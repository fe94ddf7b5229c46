package eventgrid_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/cmkd-io/cmkd/emulator/eventgrid"
)

const (
	testKey   = "test-shared-access-key"
	testTopic = "topic1"
	testSub   = "sub1"
)

// clock is a settable clock for lock and delay decisions.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2024, 7, 4, 2, 28, 18, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func start(t *testing.T, cfg eventgrid.Config) *eventgrid.Server {
	t.Helper()
	if cfg.Key == "" && !cfg.AllowBearer {
		cfg.Key = testKey
	}
	if cfg.Topics == nil {
		cfg.Topics = map[string][]string{testTopic: {testSub}}
	}
	s, err := eventgrid.Start(cfg)
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func clientOptions(s *eventgrid.Server) azcore.ClientOptions {
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool(), MinVersion: tls.VersionTLS12}}
	return azcore.ClientOptions{
		Transport: &http.Client{Transport: tr},
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
}

func clientsWithKey(t *testing.T, s *eventgrid.Server, topic, sub, key string) (*aznamespaces.SenderClient, *aznamespaces.ReceiverClient) {
	t.Helper()
	cred := azcore.NewKeyCredential(key)
	opts := clientOptions(s)
	snd, err := aznamespaces.NewSenderClientWithSharedKeyCredential(s.URL(), topic, cred, &aznamespaces.SenderClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := aznamespaces.NewReceiverClientWithSharedKeyCredential(s.URL(), topic, sub, cred, &aznamespaces.ReceiverClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	return snd, rcv
}

func clients(t *testing.T, s *eventgrid.Server) (*aznamespaces.SenderClient, *aznamespaces.ReceiverClient) {
	return clientsWithKey(t, s, testTopic, testSub, testKey)
}

func event(t *testing.T, typ string, data any) *messaging.CloudEvent {
	t.Helper()
	ce, err := messaging.NewCloudEvent("test-source", typ, data, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &ce
}

func send(t *testing.T, snd *aznamespaces.SenderClient, evs ...*messaging.CloudEvent) {
	t.Helper()
	if _, err := snd.SendEvents(t.Context(), evs, nil); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// receive asks for up to n events, waiting at most 10 s (the minimum).
func receive(t *testing.T, rcv *aznamespaces.ReceiverClient, n int32) []aznamespaces.ReceiveDetails {
	t.Helper()
	wait := int32(10)
	resp, err := rcv.ReceiveEvents(t.Context(), &aznamespaces.ReceiveEventsOptions{MaxEvents: &n, MaxWaitTime: &wait})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	return resp.Details
}

func receiveOne(t *testing.T, rcv *aznamespaces.ReceiverClient) aznamespaces.ReceiveDetails {
	t.Helper()
	got := receive(t, rcv, 1)
	if len(got) != 1 {
		t.Fatalf("received %d events, want 1", len(got))
	}
	return got[0]
}

// nothingWithin asserts that no event is delivered within d.
func nothingWithin(t *testing.T, rcv *aznamespaces.ReceiverClient, d time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	resp, err := rcv.ReceiveEvents(ctx, nil)
	if err == nil && len(resp.Details) > 0 {
		t.Fatalf("got event %s, want none", resp.Details[0].Event.ID)
	}
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("receive: %v", err)
	}
}

func tokenOf(d aznamespaces.ReceiveDetails) string { return *d.BrokerProperties.LockToken }

func deliveryCount(d aznamespaces.ReceiveDetails) int { return int(*d.BrokerProperties.DeliveryCount) }

func wantSucceeded(t *testing.T, op string, succeeded []string, failed []aznamespaces.FailedLockToken, tokens ...string) {
	t.Helper()
	if len(failed) != 0 {
		t.Fatalf("%s: failed tokens %v: %v", op, *failed[0].LockToken, failed[0].Error)
	}
	if len(succeeded) != len(tokens) {
		t.Fatalf("%s: succeeded %d tokens, want %d", op, len(succeeded), len(tokens))
	}
	for i := range tokens {
		if succeeded[i] != tokens[i] {
			t.Fatalf("%s: succeeded[%d] = %q, want %q", op, i, succeeded[i], tokens[i])
		}
	}
}

func wantFailed(t *testing.T, failed []aznamespaces.FailedLockToken, token, code, message string) {
	t.Helper()
	for _, f := range failed {
		if *f.LockToken != token {
			continue
		}
		if *f.Error.Code != code || f.Error.Error() != message {
			t.Fatalf("token failed with %s %q, want %s %q", *f.Error.Code, f.Error.Error(), code, message)
		}
		return
	}
	t.Fatalf("token %q not among failed tokens", token)
}

func wantResponseError(t *testing.T, err error, status int, code string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *azcore.ResponseError", err)
	}
	if re.StatusCode != status || re.ErrorCode != code {
		t.Fatalf("got %d %s, want %d %s", re.StatusCode, re.ErrorCode, status, code)
	}
}
