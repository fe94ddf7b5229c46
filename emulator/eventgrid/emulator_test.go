package eventgrid_test

import (
	"crypto/x509"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/cmkd-io/cmkd/emulator/eventgrid"
)

func TestPublishReceiveAcknowledge(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, rcv := clients(t, s)

	at := time.Date(2024, 4, 10, 10, 6, 20, 635998200, time.FixedZone("", -7*3600))
	single, err := messaging.NewCloudEvent("employee_source", "type", map[string]any{"Name": "Bob"}, &messaging.CloudEventOptions{
		Subject:    to.Ptr("subject"),
		Time:       &at,
		Extensions: map[string]any{"extension2": "extension2value"},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := snd.SendEvent(t.Context(), &single, nil); err != nil {
		t.Fatalf("send single: %v", err)
	}
	send(t, snd, event(t, "type", []byte("bytes")), event(t, "type", "hello world"))

	got := receive(t, rcv, 10)
	if len(got) != 3 {
		t.Fatalf("received %d events, want 3", len(got))
	}
	first := got[0].Event
	if first.ID != single.ID || *first.Subject != "subject" || first.Extensions["extension2"] != "extension2value" {
		t.Errorf("first event = %+v, want the single event with subject and extension", first)
	}
	if want := at.UTC(); !first.Time.Equal(want) || first.Time.Location() != time.UTC {
		t.Errorf("time = %v, want %v normalised to UTC", first.Time, want)
	}
	if string(first.Data.([]byte)) != `{"Name":"Bob"}` {
		t.Errorf("data = %s", first.Data)
	}
	if string(got[1].Event.Data.([]byte)) != "bytes" || string(got[2].Event.Data.([]byte)) != `"hello world"` {
		t.Errorf("batch data = %q, %q", got[1].Event.Data, got[2].Event.Data)
	}
	var tokens []string
	for _, d := range got {
		if deliveryCount(d) != 1 {
			t.Errorf("deliveryCount = %d, want 1", deliveryCount(d))
		}
		tokens = append(tokens, tokenOf(d))
	}
	ack, err := rcv.AcknowledgeEvents(t.Context(), tokens, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantSucceeded(t, "acknowledge", ack.SucceededLockTokens, ack.FailedLockTokens, tokens...)
	if n := s.Pending(testTopic, testSub); n != 0 {
		t.Errorf("Pending = %d after acknowledge, want 0", n)
	}
}

func TestSettleTwiceTokenLost(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, rcv := clients(t, s)
	send(t, snd, event(t, "world", []byte("ack this one")))
	tok := tokenOf(receiveOne(t, rcv))
	if _, err := rcv.AcknowledgeEvents(t.Context(), []string{tok}, nil); err != nil {
		t.Fatal(err)
	}

	ack, err := rcv.AcknowledgeEvents(t.Context(), []string{tok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFailed(t, ack.FailedLockTokens, tok, "TokenLost", "Token has expired.")
	rej, err := rcv.RejectEvents(t.Context(), []string{tok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFailed(t, rej.FailedLockTokens, tok, "TokenLost", "Token has expired.")
	rel, err := rcv.ReleaseEvents(t.Context(), []string{tok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFailed(t, rel.FailedLockTokens, tok, "TokenLost", "Token has expired.")
	ren, err := rcv.RenewEventLocks(t.Context(), []string{tok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFailed(t, ren.FailedLockTokens, tok, "TokenLost", "Token has expired.")
}

func TestPartialFailureAndBadToken(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, rcv := clients(t, s)
	send(t, snd, event(t, "t", "a"), event(t, "t", "b"))
	got := receive(t, rcv, 2)
	if len(got) != 2 {
		t.Fatalf("received %d, want 2", len(got))
	}
	if _, err := rcv.AcknowledgeEvents(t.Context(), []string{tokenOf(got[0])}, nil); err != nil {
		t.Fatal(err)
	}

	ack, err := rcv.AcknowledgeEvents(t.Context(), []string{tokenOf(got[0]), tokenOf(got[1]), "faketoken"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(ack.SucceededLockTokens) != 1 || ack.SucceededLockTokens[0] != tokenOf(got[1]) {
		t.Errorf("succeeded = %v, want only the second token", ack.SucceededLockTokens)
	}
	wantFailed(t, ack.FailedLockTokens, tokenOf(got[0]), "TokenLost", "Token has expired.")
	wantFailed(t, ack.FailedLockTokens, "faketoken", "BadToken", "Cannot decode lockToken")
}

func TestReleaseRedelivers(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, rcv := clients(t, s)
	send(t, snd, event(t, "world", "event one"))
	first := receiveOne(t, rcv)

	rel, err := rcv.ReleaseEvents(t.Context(), []string{tokenOf(first)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantSucceeded(t, "release", rel.SucceededLockTokens, rel.FailedLockTokens, tokenOf(first))

	again := receiveOne(t, rcv)
	if again.Event.ID != first.Event.ID || deliveryCount(again) != 2 {
		t.Fatalf("redelivered %s with count %d, want %s with count 2", again.Event.ID, deliveryCount(again), first.Event.ID)
	}
	if tokenOf(again) == tokenOf(first) {
		t.Error("a redelivery must carry a new lock token")
	}
}

func TestReleaseWithDelay(t *testing.T) {
	clk := newClock()
	s := start(t, eventgrid.Config{Now: clk.Now})
	snd, rcv := clients(t, s)
	send(t, snd, event(t, "world", "later"))
	first := receiveOne(t, rcv)

	rel, err := rcv.ReleaseEvents(t.Context(), []string{tokenOf(first)},
		&aznamespaces.ReleaseEventsOptions{ReleaseDelayInSeconds: to.Ptr(aznamespaces.ReleaseDelayTenSeconds)})
	if err != nil {
		t.Fatal(err)
	}
	wantSucceeded(t, "release", rel.SucceededLockTokens, rel.FailedLockTokens, tokenOf(first))
	nothingWithin(t, rcv, 300*time.Millisecond)

	clk.Advance(10 * time.Second)
	if again := receiveOne(t, rcv); deliveryCount(again) != 2 {
		t.Fatalf("deliveryCount = %d, want 2", deliveryCount(again))
	}
}

func TestReleaseDelayMustBeAllowed(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, rcv := clients(t, s)
	send(t, snd, event(t, "world", "x"))
	tok := tokenOf(receiveOne(t, rcv))

	_, err := rcv.ReleaseEvents(t.Context(), []string{tok},
		&aznamespaces.ReleaseEventsOptions{ReleaseDelayInSeconds: to.Ptr(aznamespaces.ReleaseDelay("5"))})
	wantResponseError(t, err, http.StatusBadRequest, "ArgumentInvalid")
}

func TestRejectDeadLetters(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, rcv := clients(t, s)
	ev := event(t, "world", "reject me")
	send(t, snd, ev)
	tok := tokenOf(receiveOne(t, rcv))

	rej, err := rcv.RejectEvents(t.Context(), []string{tok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantSucceeded(t, "reject", rej.SucceededLockTokens, rej.FailedLockTokens, tok)
	dl := s.DeadLetters(testTopic, testSub)
	if len(dl) != 1 || dl[0].Event.ID != ev.ID || dl[0].Reason != eventgrid.ReasonRejected || dl[0].DeliveryCount != 1 {
		t.Fatalf("dead letters = %+v, want the rejected event once", dl)
	}
	if string(dl[0].Event.Data) != `"reject me"` {
		t.Errorf("dead letter data = %s", dl[0].Event.Data)
	}
	if n := s.Pending(testTopic, testSub); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
}

func TestLockExpiryRedelivers(t *testing.T) {
	s := start(t, eventgrid.Config{LockDuration: time.Second})
	snd, rcv := clients(t, s)
	send(t, snd, event(t, "world", "slow"))
	first := receiveOne(t, rcv)

	// The long poll wakes when the lock expires; nothing else happens.
	began := time.Now()
	again := receiveOne(t, rcv)
	if again.Event.ID != first.Event.ID || deliveryCount(again) != 2 {
		t.Fatalf("redelivered %s with count %d, want %s with count 2", again.Event.ID, deliveryCount(again), first.Event.ID)
	}
	if waited := time.Since(began); waited > 5*time.Second {
		t.Errorf("redelivery took %v, want about the 1 s lock duration", waited)
	}
	ack, err := rcv.AcknowledgeEvents(t.Context(), []string{tokenOf(first)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantFailed(t, ack.FailedLockTokens, tokenOf(first), "TokenLost", "Token has expired.")
}

func TestMaxDeliveriesDeadLetters(t *testing.T) {
	clk := newClock()
	s := start(t, eventgrid.Config{LockDuration: time.Second, MaxDeliveryCount: 2, Now: clk.Now})
	snd, rcv := clients(t, s)
	send(t, snd, event(t, "world", "poison"))

	receiveOne(t, rcv)
	clk.Advance(time.Second)
	if d := receiveOne(t, rcv); deliveryCount(d) != 2 {
		t.Fatalf("deliveryCount = %d, want 2", deliveryCount(d))
	}
	clk.Advance(time.Second)

	dl := s.DeadLetters(testTopic, testSub)
	if len(dl) != 1 || dl[0].Reason != eventgrid.ReasonMaxDeliveryCount || dl[0].DeliveryCount != 2 {
		t.Fatalf("dead letters = %+v, want one after 2 deliveries", dl)
	}
	if !dl[0].At.Equal(clk.Now()) {
		t.Errorf("dead-lettered at %v, want %v", dl[0].At, clk.Now())
	}
	if n := s.Pending(testTopic, testSub); n != 0 {
		t.Errorf("Pending = %d, want 0", n)
	}
	nothingWithin(t, rcv, 300*time.Millisecond)
}

func TestRenewLockKeepsEvent(t *testing.T) {
	clk := newClock()
	s := start(t, eventgrid.Config{LockDuration: 10 * time.Second, Now: clk.Now})
	snd, rcv := clients(t, s)
	send(t, snd, event(t, "eventType", "hello world"))
	tok := tokenOf(receiveOne(t, rcv))

	clk.Advance(8 * time.Second)
	ren, err := rcv.RenewEventLocks(t.Context(), []string{tok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantSucceeded(t, "renewLock", ren.SucceededLockTokens, ren.FailedLockTokens, tok)
	clk.Advance(8 * time.Second) // past the original expiry
	nothingWithin(t, rcv, 300*time.Millisecond)

	ack, err := rcv.AcknowledgeEvents(t.Context(), []string{tok}, nil)
	if err != nil {
		t.Fatal(err)
	}
	wantSucceeded(t, "acknowledge", ack.SucceededLockTokens, ack.FailedLockTokens, tok)
}

func TestLongPollAnswersOnPublish(t *testing.T) {
	s := start(t, eventgrid.Config{})
	snd, rcv := clients(t, s)
	got := make(chan []aznamespaces.ReceiveDetails, 1)
	began := time.Now()
	go func() {
		wait := int32(60)
		resp, err := rcv.ReceiveEvents(t.Context(), &aznamespaces.ReceiveEventsOptions{MaxWaitTime: &wait})
		if err != nil {
			t.Error(err)
		}
		got <- resp.Details
	}()
	send(t, snd, event(t, "world", "wake up"))
	select {
	case d := <-got:
		if len(d) != 1 {
			t.Fatalf("received %d, want 1", len(d))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("long poll did not answer when an event arrived")
	}
	if time.Since(began) > 10*time.Second {
		t.Error("long poll waited for its deadline")
	}
}

func TestEachSubscriptionGetsItsOwnCopy(t *testing.T) {
	s := start(t, eventgrid.Config{Topics: map[string][]string{testTopic: {"sub-a", "sub-b"}}})
	snd, rcvA := clientsWithKey(t, s, testTopic, "sub-a", testKey)
	_, rcvB := clientsWithKey(t, s, testTopic, "sub-b", testKey)
	ev := event(t, "world", "both")
	send(t, snd, ev)
	a, b := receiveOne(t, rcvA), receiveOne(t, rcvB)
	if a.Event.ID != ev.ID || b.Event.ID != ev.ID {
		t.Fatalf("got %s and %s, want %s twice", a.Event.ID, b.Event.ID, ev.ID)
	}
	if _, err := rcvA.AcknowledgeEvents(t.Context(), []string{tokenOf(a)}, nil); err != nil {
		t.Fatal(err)
	}
	if s.Pending(testTopic, "sub-a") != 0 || s.Pending(testTopic, "sub-b") != 1 {
		t.Error("acknowledging on one subscription must not settle the other")
	}
}

func TestCloseEndsLongPoll(t *testing.T) {
	s := start(t, eventgrid.Config{})
	_, rcv := clients(t, s)
	done := make(chan struct{})
	go func() {
		defer close(done)
		wait := int32(120)
		_, _ = rcv.ReceiveEvents(t.Context(), &aznamespaces.ReceiveEventsOptions{MaxWaitTime: &wait})
	}()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("long poll outlived Close")
	}
}

func TestInProcessPublish(t *testing.T) {
	s := start(t, eventgrid.Config{})
	_, rcv := clients(t, s)
	at := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	err := s.Publish(testTopic, eventgrid.CloudEvent{
		SpecVersion: "1.0", ID: "kv-1", Source: "/subscriptions/x/vaults/v", Subject: "k1",
		Type: "Microsoft.KeyVault.KeyNewVersionCreated", Time: at, Data: json.RawMessage(`{"Id":"https://v.vault.azure.net/keys/k1/abc"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	d := receiveOne(t, rcv)
	if d.Event.ID != "kv-1" || d.Event.Type != "Microsoft.KeyVault.KeyNewVersionCreated" || !d.Event.Time.Equal(at) {
		t.Fatalf("received %+v", d.Event)
	}
	if err := s.Publish("nope", eventgrid.CloudEvent{SpecVersion: "1.0", ID: "1", Source: "s", Type: "t", Data: json.RawMessage(`1`)}); err == nil {
		t.Error("publish to an unknown topic succeeded")
	}
	if err := s.PublishRaw(testTopic, []byte(`{"id":"x"}`)); err == nil {
		t.Error("publish of an invalid event succeeded")
	}
}

func TestCAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ca.pem")
	s := start(t, eventgrid.Config{CAFile: path})
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != string(s.CAPEM()) {
		t.Error("CA file differs from CAPEM")
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) || !strings.HasPrefix(s.URL(), "https://127.0.0.1:") {
		t.Errorf("CA PEM unusable or URL %s not loopback HTTPS", s.URL())
	}
}

func TestConfigValidate(t *testing.T) {
	for _, cfg := range []eventgrid.Config{
		{LockDuration: -1},
		{MaxDeliveryCount: -1},
		{Topics: map[string][]string{"a": {"sub1"}}},
		{Topics: map[string][]string{"topic1": {"bad/name"}}},
	} {
		if _, err := eventgrid.Start(cfg); err == nil {
			t.Errorf("Start(%+v) succeeded, want a validation error", cfg)
		}
	}
}

// TestLockedCountsHeldEvents: Locked is what receivers hold now — a test
// that kills a receiver knows it died holding events — and an event whose
// lock expired is no longer held.
func TestLockedCountsHeldEvents(t *testing.T) {
	clk := newClock()
	s := start(t, eventgrid.Config{LockDuration: time.Minute, Now: clk.Now})
	snd, rcv := clients(t, s)
	send(t, snd, event(t, "world", "a"), event(t, "world", "b"))
	if n := s.Locked(testTopic, testSub); n != 0 {
		t.Fatalf("Locked before any receive = %d, want 0", n)
	}
	got := receive(t, rcv, 2)
	if n := s.Locked(testTopic, testSub); n != len(got) || n == 0 {
		t.Fatalf("Locked after receiving %d = %d", len(got), n)
	}
	clk.Advance(time.Minute)
	if n, p := s.Locked(testTopic, testSub), s.Pending(testTopic, testSub); n != 0 || p != 2 {
		t.Fatalf("after the locks expired: Locked %d, Pending %d; want 0 and 2", n, p)
	}
}
