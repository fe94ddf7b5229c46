package eventgridtopic

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// controlPrefix is where the control API lives: event subscriptions made
// and deleted by another process, as the Azure management plane would.
const controlPrefix = "/_emulator/subscriptions/"

// RemoteSubscription is what the control API takes to create a
// subscription: the part of SubscriptionConfig that crosses processes.
type RemoteSubscription struct {
	Name                string          `json:"-"`
	Endpoint            string          `json:"endpoint"`
	Schema              Schema          `json:"schema,omitempty"`
	MaxDeliveryAttempts int             `json:"max_delivery_attempts,omitempty"`
	RetrySchedule       []time.Duration `json:"retry_schedule,omitempty"`
}

// control serves PUT and DELETE on /_emulator/subscriptions/{name}, with
// the same authentication as a publish.
func (s *Server) control(w http.ResponseWriter, r *http.Request) {
	if werr := s.authorize(r, time.Now()); werr != nil {
		writeError(w, werr)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, controlPrefix)
	switch r.Method {
	case http.MethodPut:
		var rs RemoteSubscription
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&rs); err != nil {
			writeError(w, badRequest("The subscription is not JSON: %v", err))
			return
		}
		err := s.Subscribe(SubscriptionConfig{Name: name, Endpoint: rs.Endpoint, Schema: rs.Schema,
			MaxDeliveryAttempts: rs.MaxDeliveryAttempts, RetrySchedule: rs.RetrySchedule})
		if err != nil {
			// Event Grid refuses a subscription whose handshake fails.
			writeError(w, badRequest("%v", err))
			return
		}
		w.WriteHeader(http.StatusCreated)
	case http.MethodDelete:
		if err := s.Unsubscribe(name); err != nil {
			writeError(w, &wireError{http.StatusNotFound, codeNotFound, err.Error()})
			return
		}
		w.WriteHeader(http.StatusNoContent)
	default:
		writeError(w, &wireError{http.StatusMethodNotAllowed, "MethodNotAllowed", "The method " + r.Method + " is not allowed"})
	}
}

// Remote drives an emulated topic's subscriptions from another process
// (`cmkd audit tail --eventgrid` subscribes itself to `cmkd dev`'s status
// topic this way).
type Remote struct {
	// URL is the topic endpoint (Server.URL); Key its access key.
	URL, Key string
	// HTTP trusts the emulator's certificate.
	HTTP *http.Client
}

// Subscribe creates a subscription; the emulator validates its endpoint
// with the handshake first and fails if it does not answer.
func (r Remote) Subscribe(ctx context.Context, rs RemoteSubscription) error {
	body, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	return r.do(ctx, http.MethodPut, rs.Name, body, http.StatusCreated)
}

// Unsubscribe deletes a subscription.
func (r Remote) Unsubscribe(ctx context.Context, name string) error {
	return r.do(ctx, http.MethodDelete, name, nil, http.StatusNoContent)
}

func (r Remote) do(ctx context.Context, method, name string, body []byte, want int) error {
	u := strings.TrimSuffix(r.URL, apiPath) + controlPrefix + name
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if r.Key != "" {
		req.Header.Set("aeg-sas-key", r.Key)
	}
	hc := r.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == want {
		return nil
	}
	var e struct {
		Error struct{ Code, Message string }
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) == nil && e.Error.Message != "" {
		return fmt.Errorf("%s %s: %s: %s", method, name, e.Error.Code, e.Error.Message)
	}
	return errors.New(method + " " + name + ": " + resp.Status)
}
