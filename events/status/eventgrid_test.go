package status_test

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/store"
)

// Both sinks over one store: every entry reaches the topic as the very
// CloudEvent the stream got, attribute for attribute, data included, with
// no attribute more or less.
func TestEventGridPublishesWhatNATSPublishes(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	sub, err := js.Conn().SubscribeSync(cmkd.StatusSubjects)
	if err != nil {
		t.Fatal(err)
	}
	topic := startTopic(t, eventgridtopic.Config{})
	st := newStore(t)
	runRelay(t, st, js, testConfig("r1"))
	startGridRelay(t, st, gridClient(t, topic, topicKey), gridConfig("r1"))
	evs := variedEvents()
	if err := st.AppendOutbox(t.Context(), evs...); err != nil {
		t.Fatal(err)
	}
	onNATS := map[string][]byte{}
	for range evs {
		msg, err := sub.NextMsg(10 * time.Second)
		if err != nil {
			t.Fatalf("nats: %v", err)
		}
		onNATS[msg.Header.Get(nats.MsgIdHdr)] = msg.Data
	}
	for _, e := range waitTopic(t, topic, len(evs)) {
		if e.Schema != eventgridtopic.SchemaCloudEvents {
			t.Errorf("%s published as %s", e.ID, e.Schema)
		}
		sameDocument(t, e.ID, onNATS[e.ID], e.Raw)
	}
}

// variedEvents are events of several kinds, tenants and data fields.
func variedEvents() []cmkd.StatusEvent {
	key := cmkd.MustParseKeyID("https://v.vault.azure.net/keys/k")
	at := time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.UTC)
	return []cmkd.StatusEvent{
		{ID: "ev-1", Kind: cmkd.KindSealed, Tenant: "acme", Time: at, Key: key, Version: "v1", Reason: "disabled <&> \"quoted\" \u00e9\u2028", Cause: "kv-1"},
		{ID: "ev-2", Kind: cmkd.KindRewrapCompleted, Tenant: "beta", Time: at, Key: key, Version: "v2", PreviousVersion: "v1",
			DEKs: &cmkd.DEKCounts{Total: 10, Rewrapped: 10, Duration: time.Second}},
		{ID: "ev-3", Kind: cmkd.KindKeyNearExpiry, Tenant: "acme", Time: at, Key: key, Version: "v2", Expires: at.Add(time.Hour)},
	}
}

// sameDocument fails unless the topic's event has exactly the attributes
// and data of the NATS message.
func sameDocument(t *testing.T, id string, natsDoc, gridDoc []byte) {
	t.Helper()
	var want, got map[string]json.RawMessage
	if err := json.Unmarshal(natsDoc, &want); err != nil {
		t.Fatalf("%s on nats: %v (%s)", id, err, natsDoc)
	}
	if err := json.Unmarshal(gridDoc, &got); err != nil {
		t.Fatalf("%s on the topic: %v", id, err)
	}
	if len(got) != len(want) {
		t.Errorf("%s: the topic has attributes %s, nats %s", id, keys(got), keys(want))
	}
	for k, w := range want {
		if !sameJSON(t, w, got[k]) {
			t.Errorf("%s: %s is %s on the topic, %s on nats", id, k, got[k], w)
		}
	}
}

// sameJSON reports whether a and b are the same JSON value: a JSON
// encoder may order keys or escape characters its own way.
func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	ja, _ := json.Marshal(va)
	jb, _ := json.Marshal(vb)
	return bytes.Equal(ja, jb)
}

func keys(m map[string]json.RawMessage) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return strings.Join(ks, ",")
}

// While the topic fails, events wait in the outbox and NATS keeps
// receiving; afterwards the topic gets every one, in write order.
func TestEventGridOutageDelaysButLosesNothing(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	topic := startTopic(t, eventgridtopic.Config{})
	st := newStore(t)
	reg := prometheus.NewRegistry()
	cfg := gridConfig("r1")
	cfg.Registerer = reg
	runRelay(t, st, js, testConfig("r1"))
	startGridRelay(t, st, gridClient(t, topic, topicKey), cfg)
	write(t, st, 0, 10)
	waitTopic(t, topic, 10)

	topic.SetFailing(503)
	write(t, st, 10, 20)
	checkOnceEach(t, waitStream(t, js, 30), 0, 30)
	eventually.True(t, 10*time.Second, "the relay sees the topic fail", func() bool {
		return failures(t, reg, "unavailable") >= 2
	})
	if n := len(topic.Published()); n != 10 {
		t.Fatalf("the failing topic accepted %d events", n)
	}
	topic.SetFailing(0)
	evs := waitTopic(t, topic, 30)
	checkTopicHas(t, evs, 0, 30, false)
	checkFirstSeenInOrder(t, evs)
	waitMarked(t, st)
}

// waitMarked waits until the store has nothing pending for the topic.
func waitMarked(t *testing.T, st *store.Store) {
	t.Helper()
	eventually.True(t, 10*time.Second, "nothing pending for the topic", func() bool {
		n, err := st.OutboxPending(t.Context(), status.DefaultEventGridSink)
		return err == nil && n == 0
	})
}

// While NATS is down, the topic keeps receiving; afterwards the stream gets
// every event.
func TestNATSOutageEventGridKeepsReceiving(t *testing.T) {
	dir := t.TempDir()
	ns := startNATS(t, -1, dir)
	clientURL := ns.ClientURL()
	js := jsFor(t, clientURL)
	topic := startTopic(t, eventgridtopic.Config{})
	st := newStore(t)
	runRelay(t, st, js, testConfig("r1"))
	startGridRelay(t, st, gridClient(t, topic, topicKey), gridConfig("r1"))
	write(t, st, 0, 5)
	waitStream(t, js, 5)

	ns.Shutdown()
	ns.WaitForShutdown()
	write(t, st, 5, 15)
	checkTopicHas(t, waitTopic(t, topic, 20), 0, 20, true)
	if n, err := st.OutboxPending(t.Context(), store.NATSSink); err != nil || n != 15 {
		t.Errorf("%d entries (%v) pending for nats while it is down, want 15", n, err)
	}
	startNATS(t, portOf(t, clientURL), dir)
	checkOnceEach(t, waitStream(t, js, 20), 0, 20)
}

// bigEvent is event i with a reason of size bytes.
func bigEvent(i, size int) cmkd.StatusEvent {
	ev := event(i, "acme", cmkd.KindSealed)
	ev.Reason = strings.Repeat("r", size)
	return ev
}

// Many large events go out in requests under the topic's 1 MB limit,
// as many as the limit allows in each.
func TestEventGridBatchesSplitAtTheRequestLimit(t *testing.T) {
	topic := startTopic(t, eventgridtopic.Config{})
	st := newStore(t)
	reg := prometheus.NewRegistry()
	cfg := gridConfig("r1")
	cfg.Registerer = reg
	startGridRelay(t, st, gridClient(t, topic, topicKey), cfg)
	const n, size = 40, 100 << 10 // 4 MB in all
	for i := range n {
		if err := st.AppendOutbox(t.Context(), bigEvent(i, size)); err != nil {
			t.Fatal(err)
		}
	}
	evs := waitTopic(t, topic, n)
	waitMarked(t, st)
	checkTopicHas(t, evs, 0, n, true)
	checkFirstSeenInOrder(t, evs)
	// 10 events of 100 KiB and their attributes fit 1 MiB, 11 do not:
	// 4 requests, give or take a poll that finds only some written.
	if reqs := topic.PublishRequests(); reqs < 4 || reqs > 6 {
		t.Errorf("%d publish requests for %d events of %d bytes", reqs, n, size)
	}
	if f := failures(t, reg, "refused"); f != 0 {
		t.Errorf("%v requests refused: the relay sent one over the limit", f)
	}
	if p := metric(t, reg, "cmkd_status_eventgrid_published_total"); p != n {
		t.Errorf("%v events counted as published, want %d", p, n)
	}
	if r := metric(t, reg, "cmkd_status_eventgrid_request_bytes"); int(r) != topic.PublishRequests() {
		t.Errorf("%v request sizes observed, %d requests made (failed: %v unavailable, %v auth)", r, topic.PublishRequests(),
			failures(t, reg, "unavailable"), failures(t, reg, "auth"))
	}
	t.Logf("%d events of %d KiB in %d requests", n, size>>10, topic.PublishRequests())
}

// An event no request can carry is given up for the topic, counted and
// logged; the same tenant's later events go on, and NATS has it.
func TestEventGridGivesUpAnEventOverTheLimit(t *testing.T) {
	topic := startTopic(t, eventgridtopic.Config{})
	st := newStore(t)
	reg := prometheus.NewRegistry()
	cfg := gridConfig("r1")
	cfg.Registerer = reg
	cfg.MaxRequestBytes = 8 << 10
	startGridRelay(t, st, gridClient(t, topic, topicKey), cfg)
	write(t, st, 0, 1)
	waitTopic(t, topic, 1)
	if err := st.AppendOutbox(t.Context(), bigEvent(1, 10<<10)); err != nil {
		t.Fatal(err)
	}
	write(t, st, 2, 2)
	evs := waitTopic(t, topic, 3)
	if c := topicCounts(evs); len(evs) != 3 || c["ev-0001"] != 0 {
		t.Fatalf("topic has %v, want ev-0000, ev-0002 and ev-0003", c)
	}
	if g := metric(t, reg, "cmkd_status_eventgrid_given_up_total"); g != 1 {
		t.Errorf("%v events given up, want 1", g)
	}
	if n, err := st.OutboxPending(t.Context(), store.NATSSink); err != nil || n != 4 {
		t.Errorf("%d (%v) pending for nats, want all 4", n, err)
	}
}

// A batch the topic refuses for one bad event (400) is split until the
// bad event is alone; it alone is given up, the rest are published.
func TestEventGridSplitsARefusedBatch(t *testing.T) {
	topic := startTopic(t, eventgridtopic.Config{MaxEventBytes: 4 << 10})
	st := newStore(t)
	reg := prometheus.NewRegistry()
	cfg := gridConfig("r1")
	cfg.Registerer = reg
	cfg.Interval = time.Hour // one claim takes all of them
	r, _ := startGridRelay(t, st, gridClient(t, topic, topicKey), cfg)
	write(t, st, 0, 5)
	if err := st.AppendOutbox(t.Context(), bigEvent(5, 6<<10)); err != nil {
		t.Fatal(err)
	}
	write(t, st, 6, 4)
	r.Kick()
	evs := waitTopic(t, topic, 9)
	if c := topicCounts(evs); len(evs) != 9 || c["ev-0005"] != 0 {
		t.Fatalf("topic has %v, want all but ev-0005 once", c)
	}
	checkFirstSeenInOrder(t, evs)
	if g := metric(t, reg, "cmkd_status_eventgrid_given_up_total"); g != 1 {
		t.Errorf("%v events given up, want 1", g)
	}
	if f := failures(t, reg, "refused"); f < 2 {
		t.Errorf("%v refused requests, want the batch and its halves down to the bad event", f)
	}
}

// Refused credentials are a configuration error: counted, retried slowly,
// nothing published or lost.
func TestEventGridAuthFailureIsRetriedSlowly(t *testing.T) {
	topic := startTopic(t, eventgridtopic.Config{})
	st := newStore(t)
	reg := prometheus.NewRegistry()
	cfg := gridConfig("r1")
	cfg.Registerer = reg
	cfg.AuthBackoff = 300 * time.Millisecond
	cfg.Claim = time.Second // so that the fixed relay need not wait long
	_, stopWrong := startGridRelay(t, st, gridClient(t, topic, "wrong"), cfg)
	write(t, st, 0, 2)
	eventually.True(t, 10*time.Second, "two refusals", func() bool { return failures(t, reg, "auth") >= 2 })
	time.Sleep(300 * time.Millisecond)
	if f := failures(t, reg, "auth"); f > 4 {
		t.Errorf("%v attempts in about 0.6 s with a 300 ms backoff", f)
	}
	if n, err := st.OutboxPending(t.Context(), status.DefaultEventGridSink); err != nil || n != 2 {
		t.Errorf("%d (%v) pending, want both", n, err)
	}
	stopWrong() // the operator fixes the key
	startGridRelay(t, st, gridClient(t, topic, topicKey), gridConfig("r2"))
	checkTopicHas(t, waitTopic(t, topic, 2), 0, 2, false)
}

// A relay that published and died before marking leaves its entries to
// the next relay, which publishes them again (at least once) and nothing
// it had marked.
func TestEventGridRestartRepublishesOnlyUnmarked(t *testing.T) {
	topic := startTopic(t, eventgridtopic.Config{})
	client := gridClient(t, topic, topicKey)
	st := newStore(t)
	_, stop := startGridRelay(t, st, client, gridConfig("r1"))
	write(t, st, 0, 5)
	waitTopic(t, topic, 5)
	waitMarked(t, st)
	stop()

	write(t, st, 5, 3)
	// A relay claimed and published these, then died; its claim runs out
	// at once.
	crashed, err := st.ClaimOutboxFor(t.Context(), status.DefaultEventGridSink, "crashed", 10, time.Nanosecond)
	if err != nil || len(crashed) != 3 {
		t.Fatalf("claimed %d (%v), want 3", len(crashed), err)
	}
	publishAsRelay(t, client, crashed)
	write(t, st, 8, 2)
	startGridRelay(t, st, client, gridConfig("r2"))
	evs := waitTopic(t, topic, 5+3+3+2)
	time.Sleep(200 * time.Millisecond) // room for copies that should not come
	counts := topicCounts(topic.Published())
	for i := range 10 {
		id, want := event(i, "", "").ID, 1
		if i >= 5 && i < 8 {
			want = 2
		}
		if counts[id] != want {
			t.Errorf("%s reached the topic %d times, want %d", id, counts[id], want)
		}
	}
	checkFirstSeenInOrder(t, evs)
}

// publishAsRelay publishes entries as the relay would, with instance
// "crashed", through the real client.
func publishAsRelay(t *testing.T, client interface {
	PublishCloudEvents(ctx context.Context, evs []messaging.CloudEvent, o *azeventgrid.PublishCloudEventsOptions) (azeventgrid.PublishCloudEventsResponse, error)
}, es []store.OutboxEntry) {
	t.Helper()
	var ces []messaging.CloudEvent
	for _, e := range es {
		ce, err := status.GridCloudEvent(e.Event, "crashed")
		if err != nil {
			t.Fatal(err)
		}
		ces = append(ces, ce)
	}
	if _, err := client.PublishCloudEvents(t.Context(), ces, nil); err != nil {
		t.Fatal(err)
	}
}

// failures reads the failure counter of one cause.
func failures(t *testing.T, reg *prometheus.Registry, cause string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "cmkd_status_eventgrid_publish_failures_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cause" && l.GetValue() == cause {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestEventGridConfigValidateNamesTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg  status.EventGridConfig
		want string
	}{
		{status.EventGridConfig{}, "Instance"},
		{status.EventGridConfig{Instance: "a", Sink: store.NATSSink}, "Sink"},
		{status.EventGridConfig{Instance: "a", Sink: "Not A Name"}, "Sink"},
		{status.EventGridConfig{Instance: "a", Claim: -time.Second}, "Claim"},
		{status.EventGridConfig{Instance: "a", MaxRequestBytes: 2 << 20}, "MaxRequestBytes"},
		{status.EventGridConfig{Instance: "a", Sink: "eventgrid-2"}, ""},
	} {
		err := tc.cfg.Validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("Validate(%+v) = %v, want an error naming %q", tc.cfg, err, tc.want)
		}
	}
}
