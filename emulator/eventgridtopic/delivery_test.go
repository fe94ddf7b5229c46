package eventgridtopic_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"

	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
)

func publishCloudEvents(t *testing.T, s *eventgridtopic.Server, n int) []messaging.CloudEvent {
	t.Helper()
	evs := cloudEvents(t, n)
	if _, err := keyClient(t, s, testKey).PublishCloudEvents(context.Background(), evs, nil); err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestSubscribeValidatesEventGridWebhookAndDeliversWithBearer(t *testing.T) {
	s := start(t, eventgridtopic.Config{Name: "keyevents"})
	wh := newWebhook(t)
	cfg := wh.sub("grid-sub", eventgridtopic.SchemaEventGrid)
	var tokens atomic.Int32
	cfg.BearerToken = func(context.Context) (string, error) {
		return "token-" + strconv.Itoa(int(tokens.Add(1))), nil
	}
	if err := s.Subscribe(cfg); err != nil {
		t.Fatal(err)
	}
	vals := wh.Validations()
	if len(vals) != 1 || vals[0].method != http.MethodPost || vals[0].header.Get("aeg-event-type") != "SubscriptionValidation" ||
		vals[0].header.Get("Authorization") != "Bearer token-1" {
		t.Fatalf("validation requests %+v", vals)
	}
	var vev []map[string]any
	if err := json.Unmarshal(vals[0].body, &vev); err != nil || len(vev) != 1 ||
		vev[0]["eventType"] != "Microsoft.EventGrid.SubscriptionValidationEvent" || vev[0]["topic"] != s.TopicID() {
		t.Fatalf("validation event %s: %v", vals[0].body, err)
	}
	if data, _ := vev[0]["data"].(map[string]any); data["validationCode"] == "" || !strings.HasPrefix(data["validationUrl"].(string), "https://") {
		t.Fatalf("validation data %v", vev[0]["data"])
	}

	sent := publishCloudEvents(t, s, 1)
	if _, err := keyClient(t, s, testKey).PublishEvents(context.Background(), gridEvents(1), nil); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDelivered(testContext(t), "grid-sub", 2); err != nil {
		t.Fatal(err)
	}
	got := wh.Notifications()
	if len(got) != 2 || s.Attempts("grid-sub") != 2 {
		t.Fatalf("%d notifications, %d attempts, want 2 and 2", len(got), s.Attempts("grid-sub"))
	}
	for i, n := range got {
		h := n.header
		if h.Get("aeg-event-type") != "Notification" || h.Get("aeg-subscription-name") != "GRID-SUB" ||
			h.Get("aeg-delivery-count") != "0" || !strings.HasPrefix(h.Get("Content-Type"), "application/json") ||
			h.Get("Authorization") != "Bearer token-"+strconv.Itoa(i+2) {
			t.Fatalf("notification %d headers %v", i, h)
		}
	}
	// The CloudEvent arrives converted to the Event Grid schema.
	var evs []map[string]any
	if err := json.Unmarshal(got[0].body, &evs); err != nil || len(evs) != 1 {
		t.Fatalf("delivery body %s: %v", got[0].body, err)
	}
	if evs[0]["id"] != sent[0].ID || evs[0]["eventType"] != keyEventType || evs[0]["subject"] != "key1" ||
		evs[0]["topic"] != s.TopicID() || evs[0]["metadataVersion"] != "1" {
		t.Fatalf("delivered %v", evs[0])
	}
	if data, _ := evs[0]["data"].(map[string]any); data["ObjectName"] != "key1" {
		t.Fatalf("delivered data %v", evs[0]["data"])
	}
	if err := json.Unmarshal(got[1].body, &evs); err != nil || len(evs) != 1 || evs[0]["id"] != "eg-a" || evs[0]["dataVersion"] != "1" {
		t.Fatalf("delivery body %s: %v", got[1].body, err)
	}
}

func TestSubscribeValidatesCloudEventsWebhookAndDelivers(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	wh := newWebhook(t)
	cfg := wh.sub("ce-sub", eventgridtopic.SchemaCloudEvents)
	cfg.StaticBearerToken = "static-token"
	if err := s.Subscribe(cfg); err != nil {
		t.Fatal(err)
	}
	vals := wh.Validations()
	if len(vals) != 1 || vals[0].method != http.MethodOptions || vals[0].header.Get("WebHook-Request-Origin") != "eventgrid.azure.net" ||
		vals[0].header.Get("Authorization") != "Bearer static-token" {
		t.Fatalf("validation requests %+v", vals)
	}
	ev := eventgridtopic.CloudEvent{
		SpecVersion: "1.0", ID: "kv-1", Source: "/vaults/v1", Subject: "key1", Type: keyEventType,
		Time: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC), DataContentType: "application/json",
		Data: json.RawMessage(`{"ObjectName":"key1","Version":"abc"}`),
	}
	if err := s.Publish(ev); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDelivered(testContext(t), "ce-sub", 1); err != nil {
		t.Fatal(err)
	}
	got := wh.Notifications()
	if len(got) != 1 || got[0].header.Get("Content-Type") != "application/cloudevents+json; charset=utf-8" ||
		got[0].header.Get("Authorization") != "Bearer static-token" || got[0].header.Get("aeg-subscription-name") != "CE-SUB" {
		t.Fatalf("notifications %+v", got)
	}
	var back eventgridtopic.CloudEvent
	if err := json.Unmarshal(got[0].body, &back); err != nil {
		t.Fatalf("delivered %s: %v", got[0].body, err)
	}
	if back.ID != ev.ID || back.Source != ev.Source || back.Type != ev.Type || back.Subject != ev.Subject ||
		!back.Time.Equal(ev.Time) || string(back.Data) != string(ev.Data) || back.SpecVersion != "1.0" {
		t.Fatalf("delivered %+v, sent %+v", back, ev)
	}
}

func TestSubscribeFailsWhenTheWebhookDoesNotValidate(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	for _, tc := range []struct {
		name   string
		schema eventgridtopic.Schema
		echo   func(string) string
		origin string
	}{
		{"wrong-code", eventgridtopic.SchemaEventGrid, func(string) string { return "not-the-code" }, "eventgrid.azure.net"},
		{"empty-code", eventgridtopic.SchemaEventGrid, func(string) string { return "" }, "eventgrid.azure.net"},
		{"no-origin", eventgridtopic.SchemaCloudEvents, func(c string) string { return c }, ""},
		{"other-origin", eventgridtopic.SchemaCloudEvents, func(c string) string { return c }, "example.com"},
	} {
		wh := newWebhook(t)
		wh.Misbehave(tc.echo, tc.origin)
		if err := s.Subscribe(wh.sub(tc.name, tc.schema)); err == nil || !strings.Contains(err.Error(), "validation") {
			t.Errorf("%s: Subscribe returned %v, want a validation error", tc.name, err)
		}
		if len(wh.Validations()) != 1 {
			t.Errorf("%s: %d validation requests, want 1", tc.name, len(wh.Validations()))
		}
	}
	// An endpoint nobody listens on fails too, and untrusted TLS does.
	down := newWebhook(t)
	cfg := down.sub("down", eventgridtopic.SchemaEventGrid)
	down.srv.Close()
	if err := s.Subscribe(cfg); err == nil {
		t.Error("Subscribe to a closed endpoint succeeded")
	}
	wh := newWebhook(t)
	cfg = wh.sub("untrusted", eventgridtopic.SchemaEventGrid)
	cfg.RootCAs = s.CAPool()
	if err := s.Subscribe(cfg); err == nil {
		t.Error("Subscribe to an untrusted endpoint succeeded")
	}
	// None of them became a subscription.
	publishCloudEvents(t, s, 1)
	if got := s.WaitDelivered(testContext(t), "wrong-code", 1); !errors.Is(got, eventgridtopic.ErrUnknownSubscription) {
		t.Fatalf("wait on a failed subscription: %v", got)
	}
	// Names are checked and unique.
	if err := s.Subscribe(wh.sub("ok-sub", eventgridtopic.SchemaEventGrid)); err != nil {
		t.Fatal(err)
	}
	if err := s.Subscribe(wh.sub("ok-sub", eventgridtopic.SchemaEventGrid)); err == nil {
		t.Error("a second subscription with the same name was created")
	}
	if err := s.Subscribe(wh.sub("x", eventgridtopic.SchemaEventGrid)); err == nil {
		t.Error("a one-letter name was accepted")
	}
}

func TestRetriesUntilTheWebhookRecovers(t *testing.T) {
	const failures = 3
	s := start(t, eventgridtopic.Config{})
	wh := newWebhook(t)
	wh.Answer(func(n int, _ *http.Request) int {
		if n <= failures {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	if err := s.Subscribe(wh.sub("flaky", eventgridtopic.SchemaCloudEvents)); err != nil {
		t.Fatal(err)
	}
	publishCloudEvents(t, s, 1)
	if err := s.WaitDelivered(testContext(t), "flaky", 1); err != nil {
		t.Fatal(err)
	}
	if a := s.Attempts("flaky"); a != failures+1 {
		t.Fatalf("%d attempts, want %d", a, failures+1)
	}
	for i, n := range wh.Notifications() {
		if c := n.header.Get("aeg-delivery-count"); c != strconv.Itoa(i) {
			t.Fatalf("attempt %d: aeg-delivery-count %q", i+1, c)
		}
	}
	if s.Delivered("flaky") != 1 || len(s.DeadLetters("flaky")) != 0 || s.Pending("flaky") != 0 {
		t.Fatalf("delivered %d, dead %d, pending %d", s.Delivered("flaky"), len(s.DeadLetters("flaky")), s.Pending("flaky"))
	}
}

func TestClientErrorsDeadLetterAtOnce(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			s := start(t, eventgridtopic.Config{})
			wh := newWebhook(t)
			wh.Answer(func(int, *http.Request) int { return status })
			if err := s.Subscribe(wh.sub("refuser", eventgridtopic.SchemaEventGrid)); err != nil {
				t.Fatal(err)
			}
			sent := publishCloudEvents(t, s, 1)
			dead, err := s.WaitDeadLetters(testContext(t), "refuser", 1)
			if err != nil {
				t.Fatal(err)
			}
			want := "UndeliverableDueToHttp" + strings.ReplaceAll(http.StatusText(status), " ", "")
			dl := dead[0]
			if len(dead) != 1 || dl.Reason != want || dl.DeliveryAttempts != 1 || dl.LastHTTPStatus != status ||
				dl.Event.ID != sent[0].ID || dl.Subscription != "refuser" || dl.Time.IsZero() {
				t.Fatalf("dead letters %+v, want one %s after 1 attempt", dead, want)
			}
			if status == http.StatusBadRequest && dl.Reason != eventgridtopic.ReasonUndeliverableBadRequest {
				t.Fatalf("reason %q", dl.Reason)
			}
			if s.Attempts("refuser") != 1 || s.Pending("refuser") != 0 || s.Delivered("refuser") != 0 {
				t.Fatalf("attempts %d, pending %d, delivered %d", s.Attempts("refuser"), s.Pending("refuser"), s.Delivered("refuser"))
			}
		})
	}
}

func TestServerErrorsDeadLetterAfterMaxDeliveryAttempts(t *testing.T) {
	dir := t.TempDir()
	s := start(t, eventgridtopic.Config{Name: "keyevents", DeadLetterDir: dir})
	wh := newWebhook(t)
	wh.Answer(func(int, *http.Request) int { return http.StatusInternalServerError })
	cfg := wh.sub("broken", eventgridtopic.SchemaEventGrid)
	cfg.MaxDeliveryAttempts = 4
	if err := s.Subscribe(cfg); err != nil {
		t.Fatal(err)
	}
	sent := publishCloudEvents(t, s, 1)
	dead, err := s.WaitDeadLetters(testContext(t), "broken", 1)
	if err != nil {
		t.Fatal(err)
	}
	dl := dead[0]
	if dl.Reason != eventgridtopic.ReasonMaxDeliveryAttemptsExceeded || dl.DeliveryAttempts != 4 ||
		dl.LastHTTPStatus != 500 || dl.LastDeliveryOutcome != "InternalServerError" {
		t.Fatalf("dead letter %+v", dl)
	}
	if n := len(wh.Notifications()); n != 4 || s.Attempts("broken") != 4 || s.Pending("broken") != 0 {
		t.Fatalf("%d notifications, %d attempts, %d pending; want 4, 4, 0", n, s.Attempts("broken"), s.Pending("broken"))
	}

	// The dead letter was also written where Event Grid puts its blobs.
	var files []string
	if err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			files = append(files, path)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(files) != 1 || !strings.HasPrefix(files[0], filepath.Join(dir, "KEYEVENTS", "BROKEN", dl.Time.UTC().Format("2006"))) {
		t.Fatalf("dead-letter files %v", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var blob []map[string]any
	if err := json.Unmarshal(b, &blob); err != nil || len(blob) != 1 {
		t.Fatalf("dead-letter file %s: %v", b, err)
	}
	if blob[0]["id"] != sent[0].ID || blob[0]["deadLetterReason"] != "MaxDeliveryAttemptsExceeded" ||
		blob[0]["deliveryAttempts"] != 4.0 || blob[0]["lastHttpStatusCode"] != 500.0 || blob[0]["eventType"] != keyEventType {
		t.Fatalf("dead-letter file %s", b)
	}
}

func TestEventTimeToLiveExceededDeadLetters(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	wh := newWebhook(t)
	wh.Answer(func(int, *http.Request) int { return http.StatusServiceUnavailable })
	cfg := wh.sub("slow", eventgridtopic.SchemaCloudEvents)
	cfg.EventTTL = 150 * time.Millisecond
	cfg.RetrySchedule = []time.Duration{20 * time.Millisecond}
	if err := s.Subscribe(cfg); err != nil {
		t.Fatal(err)
	}
	publishCloudEvents(t, s, 1)
	dead, err := s.WaitDeadLetters(testContext(t), "slow", 1)
	if err != nil {
		t.Fatal(err)
	}
	dl := dead[0]
	if dl.Reason != eventgridtopic.ReasonTimeToLiveExceeded || dl.DeliveryAttempts < 1 || dl.DeliveryAttempts >= 30 ||
		dl.LastHTTPStatus != http.StatusServiceUnavailable || dl.Time.Sub(dl.Event.PublishTime) < cfg.EventTTL {
		t.Fatalf("dead letter %+v", dl)
	}
	if s.Pending("slow") != 0 || s.Attempts("slow") != dl.DeliveryAttempts {
		t.Fatalf("pending %d, attempts %d", s.Pending("slow"), s.Attempts("slow"))
	}
}

func TestConnectionErrorsAndTimeoutsAreRetried(t *testing.T) {
	s := start(t, eventgridtopic.Config{})

	// A webhook that stops listening after validation: every attempt
	// fails to connect until the attempts run out.
	gone := newWebhook(t)
	cfg := gone.sub("gone", eventgridtopic.SchemaEventGrid)
	cfg.MaxDeliveryAttempts = 3
	if err := s.Subscribe(cfg); err != nil {
		t.Fatal(err)
	}
	gone.srv.Close()

	// A webhook that hangs on its first notification past the delivery
	// timeout, then answers.
	hang := newWebhook(t)
	hang.Answer(func(n int, r *http.Request) int {
		if n == 1 {
			<-r.Context().Done()
		}
		return http.StatusOK
	})
	cfg = hang.sub("hang", eventgridtopic.SchemaEventGrid)
	cfg.DeliveryTimeout = 100 * time.Millisecond
	if err := s.Subscribe(cfg); err != nil {
		t.Fatal(err)
	}

	publishCloudEvents(t, s, 1)
	ctx := testContext(t)
	dead, err := s.WaitDeadLetters(ctx, "gone", 1)
	if err != nil {
		t.Fatal(err)
	}
	if dl := dead[0]; dl.Reason != eventgridtopic.ReasonMaxDeliveryAttemptsExceeded || dl.DeliveryAttempts != 3 ||
		dl.LastHTTPStatus != 0 || dl.LastError == "" {
		t.Fatalf("dead letter %+v", dl)
	}
	if err := s.WaitDelivered(ctx, "hang", 1); err != nil {
		t.Fatal(err)
	}
	if a := s.Attempts("hang"); a != 2 {
		t.Fatalf("%d attempts, want 2 (one timed out)", a)
	}
}

func TestBatchDelivery(t *testing.T) {
	s := start(t, eventgridtopic.Config{})
	ce := newWebhook(t)
	cfg := ce.sub("ce-batch", eventgridtopic.SchemaCloudEvents)
	cfg.MaxEventsPerBatch = 3
	if err := s.Subscribe(cfg); err != nil {
		t.Fatal(err)
	}
	grid := newWebhook(t)
	cfg = grid.sub("grid-batch", eventgridtopic.SchemaEventGrid)
	cfg.MaxEventsPerBatch = 10
	cfg.PreferredBatchSizeKB = 1
	if err := s.Subscribe(cfg); err != nil {
		t.Fatal(err)
	}

	// One publish of 7 events is queued at once: batches of 3, 3 and 1.
	sent := publishCloudEvents(t, s, 7)
	ctx := testContext(t)
	if err := s.WaitDelivered(ctx, "ce-batch", 7); err != nil {
		t.Fatal(err)
	}
	var ids []string
	var sizes []int
	for _, n := range ce.Notifications() {
		if ct := n.header.Get("Content-Type"); ct != "application/cloudevents-batch+json; charset=utf-8" {
			t.Fatalf("batch content type %q", ct)
		}
		var evs []eventgridtopic.CloudEvent
		if err := json.Unmarshal(n.body, &evs); err != nil {
			t.Fatalf("batch %s: %v", n.body, err)
		}
		sizes = append(sizes, len(evs))
		for _, ev := range evs {
			ids = append(ids, ev.ID)
		}
	}
	if len(sizes) != 3 || sizes[0] != 3 || sizes[1] != 3 || sizes[2] != 1 || s.Attempts("ce-batch") != 3 {
		t.Fatalf("batch sizes %v, want [3 3 1]", sizes)
	}
	for i, ev := range sent {
		if ids[i] != ev.ID {
			t.Fatalf("delivered ids %v out of publish order", ids)
		}
	}

	// The preferred batch size bounds Event Grid schema batches: two small
	// events fit in 1 KB, none fits with one of over 600 bytes.
	pad := strings.Repeat("p", 600)
	var evs []messaging.CloudEvent
	for range 3 {
		ev, err := messaging.NewCloudEvent("/vaults/v1", keyEventType, map[string]string{"pad": pad}, nil)
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
	if _, err := keyClient(t, s, testKey).PublishCloudEvents(ctx, evs, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.WaitDelivered(ctx, "grid-batch", 10); err != nil {
		t.Fatal(err)
	}
	sizes = sizes[:0]
	for _, n := range grid.Notifications() {
		var arr []json.RawMessage
		if err := json.Unmarshal(n.body, &arr); err != nil {
			t.Fatal(err)
		}
		sizes = append(sizes, len(arr))
		total := 0
		for _, el := range arr {
			total += len(el)
		}
		if len(arr) > 1 && total > 1024 {
			t.Fatalf("a batch of %d events and %d bytes, over the preferred 1 KB", len(arr), total)
		}
	}
	if len(sizes) < 4 || sizes[0] < 2 || sizes[len(sizes)-3] != 1 || sizes[len(sizes)-2] != 1 || sizes[len(sizes)-1] != 1 {
		t.Fatalf("grid batch sizes %v, want small events batched and the large ones alone", sizes)
	}
}

func TestCloseStopsDeliveriesInFlight(t *testing.T) {
	s, err := eventgridtopic.Start(eventgridtopic.Config{Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	wh := newWebhook(t)
	inFlight := make(chan struct{})
	wh.Answer(func(n int, r *http.Request) int {
		if n == 1 {
			close(inFlight)
		}
		<-r.Context().Done()
		return http.StatusServiceUnavailable
	})
	if err := s.Subscribe(wh.sub("stuck", eventgridtopic.SchemaEventGrid)); err != nil {
		t.Fatal(err)
	}
	idle := newWebhook(t)
	if err := s.Subscribe(idle.sub("idle", eventgridtopic.SchemaEventGrid)); err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(eventgridtopic.CloudEvent{SpecVersion: "1.0", ID: "1", Source: "s", Type: "t"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-inFlight:
	case <-testContext(t).Done():
		t.Fatal("no delivery started")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "eventgridtopic.(*Server)") {
		t.Fatalf("delivery goroutines outlive Close:\n%s", stacks)
	}
	if err := s.Subscribe(idle.sub("late", eventgridtopic.SchemaEventGrid)); err == nil {
		t.Fatal("Subscribe after Close succeeded")
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
