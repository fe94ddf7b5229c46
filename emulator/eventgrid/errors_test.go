package eventgrid_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/cmkd-io/cmkd/emulator/eventgrid"
)

func TestUnknownTopicAndSubscription(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, rcv := clientsWithKey(t, s, "faketopic", testSub, testKey)
	_, err := snd.SendEvent(t.Context(), event(t, "t", "x"), nil)
	wantResponseError(t, err, http.StatusNotFound, "NotFound")
	_, err = rcv.ReceiveEvents(t.Context(), nil)
	wantResponseError(t, err, http.StatusNotFound, "NotFound")
	_, err = rcv.RejectEvents(t.Context(), []string{"x"}, nil)
	wantResponseError(t, err, http.StatusNotFound, "NotFound")

	_, rcv = clientsWithKey(t, s, testTopic, "fakesub", testKey)
	_, err = rcv.ReceiveEvents(t.Context(), nil)
	wantResponseError(t, err, http.StatusNotFound, "NotFound")
}

func TestReceiveArgumentsOutOfRange(t *testing.T) {
	s := start(t, eventgrid.Config{})
	_, rcv := clients(t, s)
	for _, tc := range []struct {
		maxEvents, maxWait int32
		code               string
	}{
		{1, 9, "ArgumentInvalid"},
		{1, 121, "ArgumentInvalid"},
		{0, 10, "ArgumentInvalid"},
		{101, 10, "ArgumentInvalid"},
		{-20, 10, "BadRequest"},
	} {
		_, err := rcv.ReceiveEvents(t.Context(), &aznamespaces.ReceiveEventsOptions{MaxEvents: to.Ptr(tc.maxEvents), MaxWaitTime: to.Ptr(tc.maxWait)})
		wantResponseError(t, err, http.StatusBadRequest, tc.code)
	}
}

func TestPublishInvalidEvent(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, _ := clients(t, s)
	_, err := snd.SendEvents(t.Context(), []*messaging.CloudEvent{{}}, nil)
	wantResponseError(t, err, http.StatusBadRequest, "BadRequest")
}

func TestAuthentication(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, rcv := clientsWithKey(t, s, testTopic, testSub, "wrong key")
	_, err := snd.SendEvent(t.Context(), event(t, "t", "x"), nil)
	wantResponseError(t, err, http.StatusUnauthorized, "Unauthorized")
	_, err = rcv.ReceiveEvents(t.Context(), nil)
	wantResponseError(t, err, http.StatusUnauthorized, "Unauthorized")

	// A bearer token is refused unless allowed.
	opts := &aznamespaces.SenderClientOptions{ClientOptions: clientOptions(s)}
	bearer, err := aznamespaces.NewSenderClient(s.URL(), testTopic, staticToken("t0ken"), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = bearer.SendEvent(t.Context(), event(t, "t", "x"), nil)
	wantResponseError(t, err, http.StatusUnauthorized, "Unauthorized")
}

func TestBearerAllowed(t *testing.T) {
	s := start(t, eventgrid.Config{AllowBearer: true})
	opts := clientOptions(s)
	snd, err := aznamespaces.NewSenderClient(s.URL(), testTopic, staticToken("t0ken"), &aznamespaces.SenderClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	rcv, err := aznamespaces.NewReceiverClient(s.URL(), testTopic, testSub, staticToken("t0ken"), &aznamespaces.ReceiverClientOptions{ClientOptions: opts})
	if err != nil {
		t.Fatal(err)
	}
	send(t, snd, event(t, "t", "x"))
	receiveOne(t, rcv)
}

// staticToken is a credential that always presents the same token; the
// emulator accepts any bearer token when told to.
type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// rawPost sends a request the SDK would not, to check the wire answers.
func rawPost(t *testing.T, s *eventgrid.Server, path, contentType string, body []byte) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, s.URL()+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "SharedAccessKey "+testKey)
	req.Header.Set("Content-Type", contentType)
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool(), MinVersion: tls.VersionTLS12}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

func TestWireShapes(t *testing.T) {
	s := start(t, eventgrid.Config{})
	resp, body := rawPost(t, s, "/topics/faketopic:publish?api-version=2024-06-01", "application/cloudevents+json; charset=utf-8", []byte(`{}`))
	if resp.StatusCode != 404 || resp.Header.Get("broker-errorcode") != "NotFound" {
		t.Errorf("unknown topic: %d %q", resp.StatusCode, resp.Header.Get("broker-errorcode"))
	}
	e, _ := body["error"].(map[string]any)
	if e["message"] != "Topic 'faketopic' is not found" || e["tracking_id"] == nil || e["timestamp_utc"] == nil {
		t.Errorf("error body = %v", body)
	}

	resp, body = rawPost(t, s, "/topics/topic1:publish?api-version=2024-06-01", "application/cloudevents+json; charset=utf-8",
		[]byte(`{"id":"1","source":"s","specversion":"1.0","type":"t","data":{}}`))
	if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("publish answered %d %v %q, want 200 {}", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}

	resp, body = rawPost(t, s, "/topics/topic1/eventsubscriptions/sub1:receive?api-version=2024-06-01&maxWaitTime=10", "", nil)
	if resp.Header.Get("Content-Type") != "application/json; charset=utf-8" || len(body["value"].([]any)) != 1 {
		t.Errorf("receive answered %q %v", resp.Header.Get("Content-Type"), body)
	}

	resp, body = rawPost(t, s, "/topics/topic1/eventsubscriptions/sub1:acknowledge?api-version=2024-06-01", "application/json", []byte(`{"lockTokens":["faketoken"]}`))
	if resp.StatusCode != 200 || body["succeededLockTokens"] == nil || len(body["succeededLockTokens"].([]any)) != 0 {
		t.Errorf("acknowledge answered %d %v, want succeededLockTokens: []", resp.StatusCode, body)
	}

	big := `{"id":"1","source":"s","specversion":"1.0","type":"t","data":"` + strings.Repeat("x", 1<<20) + `"}`
	resp, _ = rawPost(t, s, "/topics/topic1:publish?api-version=2024-06-01", "application/cloudevents+json", []byte(big))
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized publish answered %d, want 413", resp.StatusCode)
	}
}
