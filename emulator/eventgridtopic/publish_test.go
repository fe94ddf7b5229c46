package eventgridtopic_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"

	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
)

const keyEventType = "Microsoft.KeyVault.KeyNewVersionCreated"

func cloudEvents(t *testing.T, n int) []messaging.CloudEvent {
	t.Helper()
	var out []messaging.CloudEvent
	for i := range n {
		ev, err := messaging.NewCloudEvent("/vaults/v1", keyEventType,
			map[string]any{"ObjectName": "key1", "Version": string(rune('a' + i))},
			&messaging.CloudEventOptions{Subject: to.Ptr("key1")})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, ev)
	}
	return out
}

func gridEvents(n int) []azeventgrid.Event {
	var out []azeventgrid.Event
	for i := range n {
		out = append(out, azeventgrid.Event{
			ID:          to.Ptr("eg-" + string(rune('a'+i))),
			EventType:   to.Ptr(keyEventType),
			Subject:     to.Ptr("key1"),
			EventTime:   to.Ptr(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)),
			DataVersion: to.Ptr("1"),
			Data:        map[string]any{"ObjectName": "key1"},
		})
	}
	return out
}

func requireCloudEventsPublished(t *testing.T, s *eventgridtopic.Server, sent []messaging.CloudEvent) {
	t.Helper()
	got := s.Published()
	if len(got) != len(sent) {
		t.Fatalf("published %d events, want %d", len(got), len(sent))
	}
	for i, ev := range got {
		if ev.ID != sent[i].ID || ev.Type != keyEventType || ev.Source != "/vaults/v1" || ev.Subject != "key1" ||
			ev.Schema != eventgridtopic.SchemaCloudEvents || ev.PublishTime.IsZero() {
			t.Fatalf("event %d: %+v", i, ev)
		}
		var data struct{ ObjectName string }
		if err := json.Unmarshal(ev.Data, &data); err != nil || data.ObjectName != "key1" {
			t.Fatalf("event %d data %s: %v", i, ev.Data, err)
		}
		var raw map[string]any
		if err := json.Unmarshal(ev.Raw, &raw); err != nil || raw["specversion"] != "1.0" || raw["id"] != sent[i].ID {
			t.Fatalf("event %d raw %s: %v", i, ev.Raw, err)
		}
	}
}

func TestPublishCloudEventsWithSharedKey(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	sent := cloudEvents(t, 3)
	if _, err := keyClient(t, s, testKey).PublishCloudEvents(context.Background(), sent, nil); err != nil {
		t.Fatal(err)
	}
	requireCloudEventsPublished(t, s, sent)
}

func TestPublishEventGridSchemaWithSharedKey(t *testing.T) {
	s := start(t, eventgridtopic.Config{Name: "keyevents"})
	if _, err := keyClient(t, s, testKey).PublishEvents(context.Background(), gridEvents(2), nil); err != nil {
		t.Fatal(err)
	}
	got := s.Published()
	if len(got) != 2 {
		t.Fatalf("published %d events, want 2", len(got))
	}
	for i, ev := range got {
		if ev.ID != "eg-"+string(rune('a'+i)) || ev.Type != keyEventType || ev.Subject != "key1" || ev.DataVersion != "1" ||
			ev.Schema != eventgridtopic.SchemaEventGrid || !ev.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Fatalf("event %d: %+v", i, ev)
		}
		if ev.Source != s.TopicID() || !strings.HasSuffix(ev.Source, "/topics/keyevents") {
			t.Fatalf("event %d source %q, want the topic's resource ID", i, ev.Source)
		}
		var raw map[string]any
		if err := json.Unmarshal(ev.Raw, &raw); err != nil || raw["topic"] != s.TopicID() || raw["metadataVersion"] != "1" {
			t.Fatalf("event %d raw %s: %v", i, ev.Raw, err)
		}
	}
}

func TestPublishWithSAS(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	ctx := context.Background()
	sent := cloudEvents(t, 1)
	if _, err := sasClient(t, s, generateSAS(s.URL(), testKey, time.Now().Add(time.Hour))).PublishCloudEvents(ctx, sent, nil); err != nil {
		t.Fatal(err)
	}
	requireCloudEventsPublished(t, s, sent)
	if _, err := sasClient(t, s, generateSAS(s.URL(), testKey, time.Now().Add(time.Hour))).PublishEvents(ctx, gridEvents(1), nil); err != nil {
		t.Fatal(err)
	}

	other := generateSAS(s.URL(), "b3RoZXIta2V5LW90aGVyLWtleS1vdGhlci1rZXktMDA=", time.Now().Add(time.Hour))
	expired := generateSAS(s.URL(), testKey, time.Now().Add(-time.Minute))
	elsewhere := generateSAS("https://mytopic.westus-1.eventgrid.azure.net/api/events", testKey, time.Now().Add(time.Hour))
	for name, sas := range map[string]string{"wrong key": other, "expired": expired, "other resource": elsewhere, "garbage": "r=x&e=y"} {
		_, err := sasClient(t, s, sas).PublishCloudEvents(ctx, cloudEvents(t, 1), nil)
		if err == nil {
			t.Fatalf("%s: SAS accepted", name)
		}
		requireResponseError(t, err, http.StatusUnauthorized, "Unauthorized")
	}
	if n := len(s.Published()); n != 2 {
		t.Fatalf("published %d events, want 2", n)
	}
}

func TestPublishWithBearer(t *testing.T) {
	s := start(t, eventgridtopic.Config{AcceptBearer: true})
	cred := &staticToken{token: "eyJhbGciOiJub25lIn0.eyJhdWQiOiJodHRwczovL2V2ZW50Z3JpZC5henVyZS5uZXQifQ.c2ln"}
	c, err := azeventgrid.NewClient(s.URL(), cred, clientOptions(s))
	if err != nil {
		t.Fatal(err)
	}
	sent := cloudEvents(t, 2)
	if _, err := c.PublishCloudEvents(context.Background(), sent, nil); err != nil {
		t.Fatal(err)
	}
	requireCloudEventsPublished(t, s, sent)
	if sc := cred.Scopes(); len(sc) == 0 || sc[0] != "https://eventgrid.azure.net/.default" {
		t.Fatalf("client asked for scopes %v", sc)
	}
	if _, err := c.PublishEvents(context.Background(), gridEvents(1), nil); err != nil {
		t.Fatal(err)
	}

	keyOnly := start(t, eventgridtopic.Config{Key: testKey})
	c, err = azeventgrid.NewClient(keyOnly.URL(), cred, clientOptions(keyOnly))
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PublishCloudEvents(context.Background(), sent, nil)
	requireResponseError(t, err, http.StatusUnauthorized, "Unauthorized")
}

func TestPublishUnauthorized(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	_, err := keyClient(t, s, "d3Jvbmcta2V5").PublishCloudEvents(context.Background(), cloudEvents(t, 1), nil)
	re := requireResponseError(t, err, http.StatusUnauthorized, "Unauthorized")
	if re.RawResponse == nil {
		t.Fatal("no raw response")
	}

	status, body := postRaw(t, s, "application/cloudevents-batch+json; charset=utf-8",
		`[{"specversion":"1.0","id":"1","source":"s","type":"t"}]`, nil)
	if status != http.StatusUnauthorized || !strings.Contains(body, `"code":"Unauthorized"`) {
		t.Fatalf("no credentials: %d %s", status, body)
	}
	status, body = postRaw(t, s, "application/cloudevents-batch+json; charset=utf-8",
		`[{"specversion":"1.0","id":"1","source":"s","type":"t"}]`, http.Header{"Authorization": {"Bearer abc"}})
	if status != http.StatusUnauthorized {
		t.Fatalf("bearer on a key-only topic: %d %s", status, body)
	}
	if n := len(s.Published()); n != 0 {
		t.Fatalf("published %d events, want none", n)
	}
}

func TestPublishOverOneMegabyteIsTooLarge(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	big := strings.Repeat("x", 600*1024)
	var evs []messaging.CloudEvent
	for range 2 {
		ev, err := messaging.NewCloudEvent("/vaults/v1", keyEventType, map[string]string{"pad": big}, nil)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	_, err := keyClient(t, s, testKey).PublishCloudEvents(context.Background(), evs, nil)
	requireResponseError(t, err, http.StatusRequestEntityTooLarge, "RequestEntityTooLarge")
	if n := len(s.Published()); n != 0 {
		t.Fatalf("published %d events, want none", n)
	}
	if _, err := keyClient(t, s, testKey).PublishCloudEvents(context.Background(), cloudEvents(t, 1), nil); err != nil {
		t.Fatalf("publish after a refused one: %v", err)
	}
}

func TestPublishEventOverOneMegabyteIsBadRequest(t *testing.T) {
	// Raise the request limit so that one event alone can pass the 1 MB
	// per-event limit.
	s := start(t, eventgridtopic.Config{MaxRequestBytes: 4 << 20})
	ev, err := messaging.NewCloudEvent("/vaults/v1", keyEventType, map[string]string{"pad": strings.Repeat("x", 1100*1024)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = keyClient(t, s, testKey).PublishCloudEvents(context.Background(), []messaging.CloudEvent{ev}, nil)
	re := requireResponseError(t, err, http.StatusBadRequest, "BadRequest")
	if !strings.Contains(re.Error(), "limit for one event") {
		t.Fatalf("message does not name the problem: %v", re)
	}
}

func TestPublishMalformedIsBadRequest(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	const ce = "application/cloudevents-batch+json; charset=utf-8"
	for _, tc := range []struct {
		name, contentType, body, mention string
	}{
		{"malformed JSON", ce, `[{"specversion":"1.0",`, "not a JSON array"},
		{"not an array", ce, `{"specversion":"1.0","id":"1","source":"s","type":"t"}`, "not a JSON array"},
		{"missing source", ce, `[{"specversion":"1.0","id":"1","type":"t"}]`, "'source'"},
		{"missing id", ce, `[{"specversion":"1.0","source":"s","type":"t"}]`, "'id'"},
		{"missing type", ce, `[{"specversion":"1.0","id":"1","source":"s"}]`, "'type'"},
		{"old specversion", ce, `[{"specversion":"0.3","id":"1","source":"s","type":"t"}]`, "specversion"},
		{"id not a string", ce, `[{"specversion":"1.0","id":1,"source":"s","type":"t"}]`, "'id'"},
		{"bad time", ce, `[{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}]`, "'time'"},
		{"both data kinds", ce, `[{"specversion":"1.0","id":"1","source":"s","type":"t","data":1,"data_base64":"AA=="}]`, "data_base64"},
		{"grid missing subject", "application/json", `[{"id":"1","eventType":"t","eventTime":"2026-01-02T03:04:05Z","data":{}}]`, "'subject'"},
		{"grid wrong topic", "application/json", `[{"id":"1","eventType":"t","subject":"s","eventTime":"2026-01-02T03:04:05Z","topic":"/other"}]`, "'topic'"},
		{"unknown content type", "text/plain", `hello`, "Content-Type"},
	} {
		status, body := postRaw(t, s, tc.contentType, tc.body, keyHeader())
		if status != http.StatusBadRequest || !strings.Contains(body, `"code":"BadRequest"`) || !strings.Contains(body, tc.mention) {
			t.Errorf("%s: %d %s, want 400 BadRequest naming %s", tc.name, status, body, tc.mention)
		}
	}
	if n := len(s.Published()); n != 0 {
		t.Fatalf("published %d events, want none", n)
	}
	// One bad event refuses the whole batch.
	status, _ := postRaw(t, s, ce, `[{"specversion":"1.0","id":"1","source":"s","type":"t"},{"specversion":"1.0","id":"2","type":"t"}]`, keyHeader())
	if status != http.StatusBadRequest || len(s.Published()) != 0 {
		t.Fatalf("half-bad batch: %d, %d published", status, len(s.Published()))
	}
	// A single structured-mode event is accepted.
	status, body := postRaw(t, s, "application/cloudevents+json", `{"specversion":"1.0","id":"1","source":"s","type":"t"}`, keyHeader())
	if status != http.StatusOK || len(s.Published()) != 1 {
		t.Fatalf("single event: %d %s", status, body)
	}
}

func TestUnknownPathIsNotFound(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	req, err := http.NewRequest(http.MethodPost, strings.TrimSuffix(s.URL(), "/api/events")+"/api/other?api-version=2018-01-01", strings.NewReader("[]"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = keyHeader()
	resp, err := httpClient(s).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("status %d, want 404", resp.StatusCode)
	}
}

func TestSchemaRestrictedTopicRefusesTheOtherSchema(t *testing.T) {
	s := start(t, eventgridtopic.Config{Schema: eventgridtopic.SchemaEventGrid})
	c := keyClient(t, s, testKey)
	_, err := c.PublishCloudEvents(context.Background(), cloudEvents(t, 1), nil)
	requireResponseError(t, err, http.StatusBadRequest, "BadRequest")
	if _, err := c.PublishEvents(context.Background(), gridEvents(1), nil); err != nil {
		t.Fatal(err)
	}
}

func TestSetFailingLetsSendersRetry(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	s.SetFailing(http.StatusServiceUnavailable)
	opts := clientOptions(s)
	opts.Retry = policy.RetryOptions{MaxRetries: 2, RetryDelay: time.Millisecond, MaxRetryDelay: time.Millisecond}
	c, err := azeventgrid.NewClientWithSharedKeyCredential(s.URL(), azcore.NewKeyCredential(testKey), opts)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.PublishCloudEvents(context.Background(), cloudEvents(t, 1), nil)
	requireResponseError(t, err, http.StatusServiceUnavailable, "ServiceUnavailable")
	if n := s.PublishRequests(); n != 3 {
		t.Fatalf("%d requests, want 3 (one try and two retries)", n)
	}
	_, err = keyClient(t, s, "d3Jvbmcta2V5").PublishCloudEvents(context.Background(), cloudEvents(t, 1), nil)
	requireResponseError(t, err, http.StatusUnauthorized, "Unauthorized")

	s.SetFailing(0)
	if _, err := c.PublishCloudEvents(context.Background(), cloudEvents(t, 1), nil); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Published()); n != 1 {
		t.Fatalf("published %d events, want 1", n)
	}
}

func TestInProcessPublishAndWait(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := make(chan []eventgridtopic.Event, 1)
	go func() {
		evs, err := s.WaitPublished(ctx, 2)
		if err != nil {
			t.Error(err)
		}
		got <- evs
	}()
	ev := eventgridtopic.CloudEvent{
		SpecVersion: "1.0", ID: "k1", Source: "/vaults/v1", Subject: "key1", Type: keyEventType,
		Time: time.Now().UTC(), DataContentType: "application/json", Data: json.RawMessage(`{"ObjectName":"key1"}`),
	}
	ev2 := ev
	ev2.ID = "k2"
	if err := s.Publish(ev, ev2); err != nil {
		t.Fatal(err)
	}
	evs := <-got
	if len(evs) != 2 || evs[0].ID != "k1" || evs[1].ID != "k2" || string(evs[0].Data) != `{"ObjectName":"key1"}` {
		t.Fatalf("waited for %+v", evs)
	}
	if err := s.Publish(eventgridtopic.CloudEvent{SpecVersion: "1.0", ID: "x", Type: "t"}); err == nil {
		t.Fatal("an event without source was accepted")
	}
	short, cancelShort := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancelShort()
	if _, err := s.WaitPublished(short, 3); err == nil {
		t.Fatal("WaitPublished for an event never published returned no error")
	}
}
