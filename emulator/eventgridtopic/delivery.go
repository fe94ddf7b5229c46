package eventgridtopic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd/emulator/internal/atomicfile"
)

// Dead-letter reasons, as Event Grid writes them in deadLetterReason. An
// endpoint answering 400, 401, 403 or 413 gives "UndeliverableDueToHttp"
// followed by the status name, e.g. ReasonUndeliverableBadRequest.
const (
	ReasonMaxDeliveryAttemptsExceeded = "MaxDeliveryAttemptsExceeded"
	ReasonTimeToLiveExceeded          = "TimeToLiveExceeded"
	ReasonUndeliverableBadRequest     = "UndeliverableDueToHttpBadRequest"
)

// ErrUnknownSubscription is returned for a subscription name never
// subscribed.
var ErrUnknownSubscription = errors.New("event subscription not found")

// DeadLetter is an event a subscription gave up on.
type DeadLetter struct {
	Subscription string
	Event        Event
	// Reason is deadLetterReason: ReasonMaxDeliveryAttemptsExceeded,
	// ReasonTimeToLiveExceeded or "UndeliverableDueToHttp<Status>".
	Reason string
	// DeliveryAttempts counts the requests that carried the event.
	DeliveryAttempts int
	// LastHTTPStatus is the last answer's status, 0 when there was none.
	LastHTTPStatus int
	// LastDeliveryOutcome names the last attempt's result: the status
	// name ("ServiceUnavailable"), "TimedOut" or "GenericError"; empty when
	// there was no attempt.
	LastDeliveryOutcome string
	// LastError is the last attempt's transport error, if any.
	LastError               string
	LastDeliveryAttemptTime time.Time
	// Time is when the event was dead-lettered.
	Time time.Time
}

// item is one event on its way to one subscription.
type item struct {
	ev          Event
	body        json.RawMessage // ev in the subscription's schema
	expires     time.Time
	attempts    int
	nextAt      time.Time
	inflight    bool
	lastStatus  int
	lastOutcome string
	lastErr     string
	lastAttempt time.Time
}

// subscription is a webhook subscription's queue and counters.
type subscription struct {
	srv  *Server
	cfg  SubscriptionConfig
	wake chan struct{} // a new event arrived
	stop chan struct{} // closed by Unsubscribe

	mu        sync.Mutex
	queue     []*item // publish order
	delivered int
	requests  int
	dead      []DeadLetter
	changed   chan struct{} // closed and replaced on delivery or dead letter
}

func (sub *subscription) signal() {
	select {
	case sub.wake <- struct{}{}:
	default:
	}
}

// notify wakes waiters; the caller holds mu.
func (sub *subscription) notify() {
	close(sub.changed)
	sub.changed = make(chan struct{})
}

// Subscribe validates the webhook with Event Grid's handshake and, if it
// passes, delivers every event published from then on to it.
func (s *Server) Subscribe(cfg SubscriptionConfig) error {
	cfg.setDefaults(s.cfg.Schema)
	if err := cfg.validate(); err != nil {
		return err
	}
	if s.lookup(cfg.Name) != nil {
		return fmt.Errorf("subscription %s already exists", cfg.Name)
	}
	if err := s.handshake(s.ctx, &cfg); err != nil {
		return fmt.Errorf("subscription %s: %w", cfg.Name, err)
	}
	sub := &subscription{srv: s, cfg: cfg, wake: make(chan struct{}, 1), stop: make(chan struct{}), changed: make(chan struct{})}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("eventgrid topic emulator is closed")
	}
	if _, dup := s.subs[cfg.Name]; dup {
		return fmt.Errorf("subscription %s already exists", cfg.Name)
	}
	s.subs[cfg.Name] = sub
	s.wg.Add(1)
	go s.run(sub)
	return nil
}

// Unsubscribe deletes a subscription: what it has not delivered is
// dropped, as when an event subscription is deleted in Azure. A delivery
// in flight finishes.
func (s *Server) Unsubscribe(name string) error {
	s.mu.Lock()
	sub, ok := s.subs[name]
	delete(s.subs, name)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("subscription %s: %w", name, ErrUnknownSubscription)
	}
	close(sub.stop)
	return nil
}

func (s *Server) lookup(name string) *subscription {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs[name]
}

// enqueue hands accepted events to every subscription; the caller holds
// s.mu, so every subscription sees events in publish order.
func (s *Server) enqueue(evs []Event) {
	for _, sub := range s.subs {
		sub.mu.Lock()
		for _, ev := range evs {
			sub.queue = append(sub.queue, &item{
				ev:      ev,
				body:    s.render(ev, sub.cfg.Schema),
				expires: ev.PublishTime.Add(sub.cfg.EventTTL),
				nextAt:  ev.PublishTime,
			})
		}
		sub.mu.Unlock()
		sub.signal()
	}
}

// run delivers a subscription's events until Close.
func (s *Server) run(sub *subscription) {
	defer s.wg.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch, wait := sub.take(time.Now())
		if len(batch) > 0 {
			s.deliver(sub, batch)
			continue
		}
		var fire <-chan time.Time
		if wait > 0 {
			timer.Reset(wait)
			fire = timer.C
		}
		select {
		case <-s.ctx.Done():
			timer.Stop()
			return
		case <-sub.stop:
			timer.Stop()
			return
		case <-sub.wake:
		case <-fire:
		}
		timer.Stop()
	}
}

// take dead-letters expired events and picks the next batch of events due,
// in publish order; with none due it says how long until one is due or
// expires (0: nothing is queued).
func (sub *subscription) take(now time.Time) (batch []*item, wait time.Duration) {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	limit := sub.cfg.PreferredBatchSizeKB * 1024
	size, full, expired := 0, false, false
	kept := sub.queue[:0]
	for _, it := range sub.queue {
		if !it.inflight && !now.Before(it.expires) {
			sub.deadLetter(it, ReasonTimeToLiveExceeded, now)
			expired = true
			continue
		}
		kept = append(kept, it)
		if it.inflight {
			continue
		}
		if !full && !it.nextAt.After(now) {
			if len(batch) == sub.cfg.MaxEventsPerBatch || (len(batch) > 0 && size+len(it.body) > limit) {
				full = true
			} else {
				batch = append(batch, it)
				size += len(it.body)
				continue
			}
		}
		for _, at := range []time.Time{it.nextAt, it.expires} {
			if d := at.Sub(now); d > 0 && (wait == 0 || d < wait) {
				wait = d
			}
		}
	}
	clear(sub.queue[len(kept):])
	sub.queue = kept
	for _, it := range batch {
		it.inflight = true
		it.attempts++
		it.lastAttempt = now
	}
	if len(batch) > 0 {
		sub.requests++
	}
	if expired {
		sub.notify()
	}
	return batch, wait
}

// deadLetter records a dead letter, in Config.DeadLetterDir too before
// anyone can see it; the caller holds mu and removes the item.
func (sub *subscription) deadLetter(it *item, reason string, now time.Time) {
	dl := DeadLetter{
		Subscription: sub.cfg.Name, Event: it.ev, Reason: reason, DeliveryAttempts: it.attempts,
		LastHTTPStatus: it.lastStatus, LastDeliveryOutcome: it.lastOutcome, LastError: it.lastErr,
		LastDeliveryAttemptTime: it.lastAttempt, Time: now,
	}
	sub.dead = append(sub.dead, dl)
	if err := sub.srv.writeDeadLetter(dl, it.body); err != nil {
		sub.srv.cfg.Logger.Warn("eventgrid topic dead letter not written", slog.String("subscription", dl.Subscription),
			slog.String("id", dl.Event.ID), slog.Any("error", err))
	}
}

// outcome is one delivery attempt's result.
type outcome struct {
	status  int
	name    string
	err     string
	success bool
	final   bool // dead-letter without retrying
}

// deliver sends a batch and settles its events by the answer.
func (s *Server) deliver(sub *subscription, batch []*item) {
	out, closing := s.attempt(sub, batch)
	if closing {
		return
	}
	now := time.Now()
	sub.mu.Lock()
	done := map[*item]bool{}
	for _, it := range batch {
		it.inflight = false
		it.lastStatus, it.lastOutcome, it.lastErr = out.status, out.name, out.err
		switch {
		case out.success:
			sub.delivered++
			done[it] = true
		case out.final:
			sub.deadLetter(it, "UndeliverableDueToHttp"+out.name, now)
			done[it] = true
		case it.attempts >= sub.cfg.MaxDeliveryAttempts:
			sub.deadLetter(it, ReasonMaxDeliveryAttemptsExceeded, now)
			done[it] = true
		default:
			sched := sub.cfg.RetrySchedule
			it.nextAt = now.Add(sched[min(it.attempts, len(sched))-1])
		}
	}
	kept := sub.queue[:0]
	for _, it := range sub.queue {
		if !done[it] {
			kept = append(kept, it)
		}
	}
	clear(sub.queue[len(kept):])
	sub.queue = kept
	sub.notify()
	sub.mu.Unlock()
	s.cfg.Logger.Debug("eventgrid topic delivery", slog.String("subscription", sub.cfg.Name),
		slog.Int("events", len(batch)), slog.Int("status", out.status), slog.String("outcome", out.name))
}

// attempt makes one delivery request; closing reports that Close cut it
// short, so that it counts for nothing.
func (s *Server) attempt(sub *subscription, batch []*item) (outcome, bool) {
	c := &sub.cfg
	ctx, cancel := context.WithTimeout(s.ctx, c.DeliveryTimeout)
	defer cancel()
	body, contentType := encodeBatch(c, batch)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewReader(body))
	if err != nil {
		return outcome{name: "GenericError", err: err.Error()}, false
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("aeg-event-type", "Notification")
	req.Header.Set("aeg-subscription-name", strings.ToUpper(c.Name))
	req.Header.Set("aeg-delivery-count", strconv.Itoa(batch[0].attempts-1))
	req.Header.Set("aeg-metadata-version", "1")
	if c.Schema == SchemaEventGrid && len(batch) == 1 {
		req.Header.Set("aeg-data-version", batch[0].ev.DataVersion)
	}
	resp, err := s.send(ctx, c, req)
	if err != nil {
		if s.ctx.Err() != nil {
			return outcome{}, true
		}
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return outcome{name: "TimedOut", err: err.Error()}, false
		}
		return outcome{name: "GenericError", err: err.Error()}, false
	}
	drain(resp)
	out := outcome{status: resp.StatusCode, name: statusName(resp.StatusCode)}
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusAccepted, http.StatusNonAuthoritativeInfo, http.StatusNoContent:
		out.success = true
	case http.StatusBadRequest, http.StatusUnauthorized, http.StatusForbidden, http.StatusRequestEntityTooLarge:
		out.final = true
	case http.StatusRequestTimeout:
		out.name = "TimedOut"
	}
	return out, false
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

func statusName(status int) string {
	if name := strings.ReplaceAll(http.StatusText(status), " ", ""); name != "" {
		return name
	}
	return "Status" + strconv.Itoa(status)
}

// encodeBatch is the request body: a JSON array, or for CloudEvents without
// batching the single event.
func encodeBatch(c *SubscriptionConfig, batch []*item) ([]byte, string) {
	if c.Schema == SchemaCloudEvents && c.MaxEventsPerBatch == 1 {
		return batch[0].body, "application/cloudevents+json; charset=utf-8"
	}
	var b bytes.Buffer
	b.WriteByte('[')
	for i, it := range batch {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(it.body)
	}
	b.WriteByte(']')
	if c.Schema == SchemaCloudEvents {
		return b.Bytes(), "application/cloudevents-batch+json; charset=utf-8"
	}
	return b.Bytes(), "application/json; charset=utf-8"
}

// ceOut and egOut are events converted from the other schema.
type ceOut struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Subject         string          `json:"subject,omitempty"`
	Type            string          `json:"type"`
	Time            string          `json:"time,omitempty"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
}

type egOut struct {
	ID              string          `json:"id"`
	Topic           string          `json:"topic"`
	Subject         string          `json:"subject"`
	Data            json.RawMessage `json:"data"`
	EventType       string          `json:"eventType"`
	EventTime       string          `json:"eventTime"`
	MetadataVersion string          `json:"metadataVersion"`
	DataVersion     string          `json:"dataVersion"`
}

// render is ev in schema: as published when the schemas match, converted
// otherwise.
func (s *Server) render(ev Event, schema Schema) json.RawMessage {
	if ev.Schema == schema {
		return ev.Raw
	}
	t := ev.Time
	if t.IsZero() {
		t = ev.PublishTime
	}
	var (
		b   []byte
		err error
	)
	if schema == SchemaCloudEvents {
		out := ceOut{SpecVersion: "1.0", ID: ev.ID, Source: ev.Source, Subject: ev.Subject, Type: ev.Type,
			Time: t.Format(time.RFC3339Nano), Data: ev.Data}
		if ev.Data != nil {
			out.DataContentType = "application/json"
		}
		b, err = json.Marshal(out)
	} else {
		data := ev.Data
		if ev.DataBase64 != "" {
			data, _ = json.Marshal(ev.DataBase64)
		}
		b, err = json.Marshal(egOut{ID: ev.ID, Topic: s.topicID, Subject: ev.Subject, Data: data, EventType: ev.Type,
			EventTime: t.Format(time.RFC3339Nano), MetadataVersion: "1", DataVersion: ev.DataVersion})
	}
	if err != nil {
		return ev.Raw // unreachable: both hold only strings and valid JSON
	}
	return b
}

// writeDeadLetter stores a dead letter in Config.DeadLetterDir, laid out as
// Event Grid's dead-letter blobs: the event as the subscription delivers
// it, with deadLetterReason, deliveryAttempts, lastDeliveryOutcome,
// lastHttpStatusCode, publishTime and lastDeliveryAttemptTime added, in a
// one-element array.
func (s *Server) writeDeadLetter(dl DeadLetter, body json.RawMessage) error {
	if s.cfg.DeadLetterDir == "" {
		return nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	put := func(k string, v any) { m[k], _ = json.Marshal(v) }
	put("deadLetterReason", dl.Reason)
	put("deliveryAttempts", dl.DeliveryAttempts)
	put("lastDeliveryOutcome", dl.LastDeliveryOutcome)
	put("lastHttpStatusCode", dl.LastHTTPStatus)
	put("publishTime", dl.Event.PublishTime.UTC().Format(time.RFC3339Nano))
	put("lastDeliveryAttemptTime", dl.LastDeliveryAttemptTime.UTC().Format(time.RFC3339Nano))
	b, err := json.MarshalIndent([]map[string]json.RawMessage{m}, "", "  ")
	if err != nil {
		return err
	}
	t := dl.Time.UTC()
	dir := filepath.Join(s.cfg.DeadLetterDir, strings.ToUpper(s.cfg.Name), strings.ToUpper(dl.Subscription),
		t.Format("2006"), t.Format("01"), t.Format("02"), t.Format("15"))
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	// Whole or not at all, as a blob appears: a reader polling the
	// directory never sees half a dead letter.
	return atomicfile.WriteFile(filepath.Join(dir, newGUID()+".json"), b, 0o600)
}

// DeadLetters returns what the subscription dead-lettered, oldest first.
func (s *Server) DeadLetters(name string) []DeadLetter {
	sub := s.lookup(name)
	if sub == nil {
		return nil
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return append([]DeadLetter(nil), sub.dead...)
}

// Delivered counts the events the subscription's endpoint accepted.
func (s *Server) Delivered(name string) int {
	return s.count(name, func(sub *subscription) int { return sub.delivered })
}

// Attempts counts the delivery requests made to the subscription's
// endpoint, the validation handshake not included.
func (s *Server) Attempts(name string) int {
	return s.count(name, func(sub *subscription) int { return sub.requests })
}

// Pending counts the subscription's events neither delivered nor
// dead-lettered.
func (s *Server) Pending(name string) int {
	return s.count(name, func(sub *subscription) int { return len(sub.queue) })
}

func (s *Server) count(name string, f func(*subscription) int) int {
	sub := s.lookup(name)
	if sub == nil {
		return 0
	}
	sub.mu.Lock()
	defer sub.mu.Unlock()
	return f(sub)
}

// WaitDelivered waits until the subscription delivered at least n events.
func (s *Server) WaitDelivered(ctx context.Context, name string, n int) error {
	_, err := s.waitSub(ctx, name, func(sub *subscription) bool { return sub.delivered >= n })
	return err
}

// WaitDeadLetters waits until the subscription dead-lettered at least n
// events and returns them all.
func (s *Server) WaitDeadLetters(ctx context.Context, name string, n int) ([]DeadLetter, error) {
	return s.waitSub(ctx, name, func(sub *subscription) bool { return len(sub.dead) >= n })
}

// WaitSettled waits until every event published so far was delivered or
// dead-lettered by the subscription.
func (s *Server) WaitSettled(ctx context.Context, name string) error {
	_, err := s.waitSub(ctx, name, func(sub *subscription) bool { return len(sub.queue) == 0 })
	return err
}

func (s *Server) waitSub(ctx context.Context, name string, done func(*subscription) bool) ([]DeadLetter, error) {
	sub := s.lookup(name)
	if sub == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrUnknownSubscription)
	}
	for {
		sub.mu.Lock()
		ok, changed := done(sub), sub.changed
		dead := append([]DeadLetter(nil), sub.dead...)
		delivered, pending := sub.delivered, len(sub.queue)
		sub.mu.Unlock()
		if ok {
			return dead, nil
		}
		select {
		case <-ctx.Done():
			return dead, fmt.Errorf("subscription %s: %d delivered, %d dead-lettered, %d pending: %w",
				name, delivered, len(dead), pending, ctx.Err())
		case <-changed:
		}
	}
}
