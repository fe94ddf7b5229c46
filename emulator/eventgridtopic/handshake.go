package eventgridtopic

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Names of the validation handshake.
const (
	validationEventType = "Microsoft.EventGrid.SubscriptionValidationEvent"
	webhookOrigin       = "eventgrid.azure.net"
	maxAnswerBytes      = 64 << 10
)

// handshake proves, as Event Grid does before creating a webhook
// subscription, that the endpoint wants the events.
func (s *Server) handshake(ctx context.Context, c *SubscriptionConfig) error {
	ctx, cancel := context.WithTimeout(ctx, c.DeliveryTimeout)
	defer cancel()
	if c.Schema == SchemaCloudEvents {
		return s.handshakeCloudEvents(ctx, c)
	}
	return s.handshakeEventGrid(ctx, c)
}

// handshakeCloudEvents is the CloudEvents webhook abuse protection
// handshake: OPTIONS with WebHook-Request-Origin, answered 200 with
// WebHook-Allowed-Origin naming the origin or "*".
func (s *Server) handshakeCloudEvents(ctx context.Context, c *SubscriptionConfig) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodOptions, c.Endpoint, nil)
	if err != nil {
		return fmt.Errorf("validation request: %w", err)
	}
	req.Header.Set("WebHook-Request-Origin", webhookOrigin)
	resp, err := s.send(ctx, c, req)
	if err != nil {
		return fmt.Errorf("validation request to %s: %w", c.Endpoint, err)
	}
	defer drain(resp)
	allowed := strings.TrimSpace(resp.Header.Get("WebHook-Allowed-Origin"))
	if resp.StatusCode != http.StatusOK || (allowed != webhookOrigin && allowed != "*") {
		return fmt.Errorf("webhook validation failed: OPTIONS %s answered %d with WebHook-Allowed-Origin %q, want 200 and %q",
			c.Endpoint, resp.StatusCode, allowed, webhookOrigin)
	}
	return nil
}

// handshakeEventGrid sends a SubscriptionValidationEvent and requires its
// code back as {"validationResponse": code}.
func (s *Server) handshakeEventGrid(ctx context.Context, c *SubscriptionConfig) error {
	code := strings.ToUpper(newGUID())
	validationURL := strings.TrimSuffix(s.URL(), apiPath) + "/webhooks/api/updatestatus?id=" + code +
		"&t=" + url.QueryEscape(time.Now().UTC().Format(time.RFC3339Nano)) + "&apiVersion=2018-05-01-preview"
	data, err := json.Marshal(map[string]string{"validationCode": code, "validationUrl": validationURL})
	if err != nil {
		return fmt.Errorf("validation event: %w", err)
	}
	body, err := json.Marshal([]egOut{{
		ID: newGUID(), Topic: s.topicID, Data: data, EventType: validationEventType,
		EventTime: time.Now().UTC().Format(time.RFC3339Nano), MetadataVersion: "1", DataVersion: "2",
	}})
	if err != nil {
		return fmt.Errorf("validation event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.Endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("validation request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	req.Header.Set("aeg-event-type", "SubscriptionValidation")
	req.Header.Set("aeg-subscription-name", strings.ToUpper(c.Name))
	req.Header.Set("aeg-delivery-count", "0")
	req.Header.Set("aeg-metadata-version", "1")
	req.Header.Set("aeg-data-version", "2")
	resp, err := s.send(ctx, c, req)
	if err != nil {
		return fmt.Errorf("validation request to %s: %w", c.Endpoint, err)
	}
	defer drain(resp)
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return fmt.Errorf("validation answer from %s: %w", c.Endpoint, err)
	}
	var got struct {
		ValidationResponse string `json:"validationResponse"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(answer, &got) != nil || got.ValidationResponse != code {
		return fmt.Errorf("webhook validation failed: %s answered %d %.200q, want 200 and {\"validationResponse\":%q}",
			c.Endpoint, resp.StatusCode, answer, code)
	}
	return nil
}

// send adds the subscription's bearer token, when it has one, and sends.
func (s *Server) send(ctx context.Context, c *SubscriptionConfig, req *http.Request) (*http.Response, error) {
	tok, err := c.token(ctx)
	if err != nil {
		return nil, fmt.Errorf("bearer token: %w", err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return c.HTTPClient.Do(req)
}

// drain reads a little of an answer so the connection can be reused, and
// closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxAnswerBytes))
	_ = resp.Body.Close()
}
