package natsq_test

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/internal/eventually"
)

// deadLettered sums cmkd_natsq_dead_lettered_total over the series whose
// labels include want.
func deadLettered(t *testing.T, reg *prometheus.Registry, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != "cmkd_natsq_dead_lettered_total" {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for k, v := range want {
				if labels[k] != v {
					continue series
				}
			}
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}

// awaitDeadLettered waits for deadLettered(want) to reach n: the count
// follows the Term, which follows the dead letter's publication.
func awaitDeadLettered(t *testing.T, reg *prometheus.Registry, want map[string]string, n float64) {
	t.Helper()
	eventually.True(t, 15*time.Second, fmt.Sprintf("cmkd_natsq_dead_lettered_total%v = %v", want, n), func() bool {
		return deadLettered(t, reg, want) == n
	})
}

func withRegistry() (natsq.Config, *prometheus.Registry) {
	cfg := testConfig()
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	return cfg, reg
}

// TestDeadLetterDropsNatsHeaders: a publisher's Nats-Expected-Stream
// header is stored with the message; copied onto the dead letter it makes
// the dead-letter stream refuse the copy, and the message never leaves
// CMKD_EVENTS.
func TestDeadLetterDropsNatsHeaders(t *testing.T) {
	js := startJetStream(t)
	cfg, reg := withRegistry()
	var rec recorder
	run(t, js, cfg, rec.handle)
	msg := nats.NewMsg("cmkd.events.in")
	msg.Data = []byte(`{"not":"an event"}`)
	msg.Header.Set("Nats-Expected-Stream", natsq.DefaultStream)
	msg.Header.Set(nats.MsgIdHdr, "delivery-7")
	msg.Header.Set("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	m := dlqMessages(t, js, 1)[0]
	eventually.True(t, 15*time.Second, "CMKD_EVENTS empty", func() bool { return settled(t, js) })
	h := m.Headers()
	for k := range h {
		if strings.HasPrefix(strings.ToLower(k), "nats-") && k != nats.MsgIdHdr {
			t.Errorf("dead letter carries %s: %v", k, h[k])
		}
	}
	if got := h.Get(natsq.HeaderReason); !strings.Contains(got, "malformed") {
		t.Errorf("reason = %q, want it to say the event is malformed", got)
	}
	if h.Get(natsq.HeaderMsgID) != "delivery-7" || h.Get("Traceparent") == "" {
		t.Errorf("dead letter headers = %v, want the original id and other headers kept", h)
	}
	if string(m.Data()) != `{"not":"an event"}` {
		t.Errorf("dead letter body = %s", m.Data())
	}
	awaitDeadLettered(t, reg, map[string]string{"reason_kind": "malformed", "outcome": "copied"}, 1)
}

func TestDeadLetterReasonIsBounded(t *testing.T) {
	js := startJetStream(t)
	cfg, reg := withRegistry()
	long := strings.Repeat("vault said no\r\n", 8<<10)
	rec := recorder{fn: func(int, events.Event) error { return events.Permanent(errors.New(long)) }}
	run(t, js, cfg, rec.handle)
	if err := natsq.Enqueue(t.Context(), js, "", probe("refused")); err != nil {
		t.Fatal(err)
	}
	m := dlqMessages(t, js, 1)[0]
	reason := m.Headers().Get(natsq.HeaderReason)
	if len(reason) > 1024 || strings.ContainsAny(reason, "\r\n") || !strings.Contains(reason, "vault said no") {
		t.Errorf("reason of %d bytes: %.80q…", len(reason), reason)
	}
	awaitDeadLettered(t, reg, map[string]string{"reason_kind": "rejected", "outcome": "copied"}, 1)
}

// TestDeadLetterTooLargeBodyAsReference: a body that fits the server's max
// payload alone, but not with the dead-letter headers, is dead-lettered as
// a reference to what was lost.
func TestDeadLetterTooLargeBodyAsReference(t *testing.T) {
	js := startJetStream(t)
	cfg, reg := withRegistry()
	var rec recorder
	run(t, js, cfg, rec.handle)
	body := []byte(strings.Repeat("x", int(js.Conn().MaxPayload())-64))
	if _, err := js.Publish(t.Context(), "cmkd.events.big", body); err != nil {
		t.Fatal(err)
	}
	m := dlqMessages(t, js, 1)[0]
	eventually.True(t, 15*time.Second, "CMKD_EVENTS empty", func() bool { return settled(t, js) })
	h := m.Headers()
	sum := sha256.Sum256(body)
	if len(m.Data()) != 0 || h.Get(natsq.HeaderBodyOmitted) == "" {
		t.Errorf("dead letter of %d bytes, omitted %q: want a reference without the body", len(m.Data()), h.Get(natsq.HeaderBodyOmitted))
	}
	if h.Get(natsq.HeaderBodySize) != strconv.Itoa(len(body)) || h.Get(natsq.HeaderBodySHA256) != hex.EncodeToString(sum[:]) ||
		h.Get(natsq.HeaderStream) != natsq.DefaultStream || h.Get(natsq.HeaderStreamSeq) != "1" || h.Get(natsq.HeaderReason) == "" {
		t.Errorf("reference headers = %v", h)
	}
	awaitDeadLettered(t, reg, map[string]string{"reason_kind": "malformed", "outcome": "reference"}, 1)
}

// TestUndeliverableDeadLetterIsTerminated: when the dead letter cannot be
// stored at all, the message is retried while the consumer redelivers it,
// then terminated and counted, instead of staying in CMKD_EVENTS for ever.
func TestUndeliverableDeadLetterIsTerminated(t *testing.T) {
	js := startJetStream(t)
	cfg, reg := withRegistry()
	var rec recorder
	run(t, js, cfg, rec.handle)
	if err := js.DeleteStream(t.Context(), natsq.DefaultDLQStream); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(t.Context(), "cmkd.events.bad", []byte(`{"not":"an event"}`)); err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 15*time.Second, "the message to leave CMKD_EVENTS", func() bool { return settled(t, js) })
	awaitDeadLettered(t, reg, map[string]string{"outcome": "dropped"}, 1)
	st, err := js.Stream(t.Context(), natsq.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	c, err := st.Consumer(t.Context(), natsq.DefaultDurable)
	if err != nil {
		t.Fatal(err)
	}
	if ci, err := c.Info(t.Context()); err != nil || ci.Delivered.Consumer != uint64(cfg.MaxDeliver+1) {
		t.Errorf("deliveries before giving up: %+v, %v; want every one the consumer grants (%d)", ci.Delivered, err, cfg.MaxDeliver+1)
	}
}

// TestDeadLetterLargeHeadersAsReference: original headers near JetStream's
// 64 KiB header limit leave no room for ours.
func TestDeadLetterLargeHeadersAsReference(t *testing.T) {
	js := startJetStream(t)
	cfg, reg := withRegistry()
	var rec recorder
	run(t, js, cfg, rec.handle)
	msg := nats.NewMsg("cmkd.events.in")
	msg.Data = []byte(`{"not":"an event"}`)
	msg.Header.Set("X-Padding", strings.Repeat("p", 65400))
	if _, err := js.PublishMsg(t.Context(), msg); err != nil {
		t.Fatal(err)
	}
	m := dlqMessages(t, js, 1)[0]
	eventually.True(t, 15*time.Second, "CMKD_EVENTS empty", func() bool { return settled(t, js) })
	if h := m.Headers(); h.Get(natsq.HeaderBodyOmitted) == "" || h.Get("X-Padding") != "" || h.Get(natsq.HeaderReason) == "" {
		t.Errorf("dead letter headers %v, want a reference", h)
	}
	awaitDeadLettered(t, reg, map[string]string{"reason_kind": "malformed", "outcome": "reference"}, 1)
}
