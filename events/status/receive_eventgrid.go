package status

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/egwebhook"
)

// maxDeliveryBytes bounds one delivery: Event Grid batches up to 1 MB.
const maxDeliveryBytes = 1 << 20

// EventGridReceiver is a webhook for an Event Grid subscription on the
// status topic (status.eventgrid): it answers both subscription handshakes
// and hands each status event of a delivery, single CloudEvent or batch,
// to each, once per event id — Event Grid delivers at least once, so a
// retried delivery repeats events, and so may the sink's own retries. A
// delivery that does not parse is answered 400 (Event Grid dead-letters
// it, never retries); an error from each, 503 (Event Grid retries).
func EventGridReceiver(each func(cmkd.StatusEvent) error) http.Handler {
	return &egReceiver{each: each, seen: map[string]bool{}}
}

// rememberIDs bounds the ids a receiver remembers: far more than a retry
// schedule's worth of events at any rate cmkd writes them.
const rememberIDs = 1 << 16

type egReceiver struct {
	each func(cmkd.StatusEvent) error
	mu   sync.Mutex
	seen map[string]bool
	ids  []string // seen's keys, oldest first
}

func (h *egReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodOptions:
		if !egwebhook.AllowOrigin(w, r) {
			http.Error(w, "missing WebHook-Request-Origin", http.StatusBadRequest)
		}
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxDeliveryBytes))
	if err != nil {
		http.Error(w, "body unreadable or over 1 MB", http.StatusRequestEntityTooLarge)
		return
	}
	if code, ok := egwebhook.ValidationCode(body); ok {
		egwebhook.AnswerValidation(w, code)
		return
	}
	evs, err := parseDelivery(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := h.hand(evs); err != nil {
		http.Error(w, "try again later", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// hand passes on the events not seen before; one that fails is not
// remembered, so that its redelivery passes it on again.
func (h *egReceiver) hand(evs []cmkd.StatusEvent) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range evs {
		if h.seen[ev.ID] {
			continue
		}
		if err := h.each(ev); err != nil {
			return err
		}
		h.remember(ev.ID)
	}
	return nil
}

func (h *egReceiver) remember(id string) {
	if len(h.ids) == rememberIDs {
		delete(h.seen, h.ids[0])
		h.ids = h.ids[1:]
	}
	h.seen[id] = true
	h.ids = append(h.ids, id)
}

// parseDelivery reads a CloudEvents delivery: one event, or a batch.
func parseDelivery(body []byte) ([]cmkd.StatusEvent, error) {
	t := bytes.TrimSpace(body)
	if len(t) == 0 {
		return nil, errors.New("empty delivery")
	}
	docs := []json.RawMessage{t}
	if t[0] == '[' {
		if err := json.Unmarshal(t, &docs); err != nil {
			return nil, err
		}
	}
	out := make([]cmkd.StatusEvent, 0, len(docs))
	for _, d := range docs {
		ev, err := cmkd.ParseStatusEvent(d)
		if err != nil {
			return nil, err
		}
		out = append(out, ev)
	}
	return out, nil
}
