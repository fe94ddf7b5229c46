package natsq

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// Enqueue publishes one delivery body, unchanged, to the work queue on
// subject (default DefaultEnqueueTo). When the body is a single event its
// id becomes the Nats-Msg-Id, so that Event Grid's redeliveries of the same
// event within the stream's duplicate window are stored once.
func Enqueue(ctx context.Context, js jetstream.JetStream, subject string, body []byte) error {
	if subject == "" {
		subject = DefaultEnqueueTo
	}
	var opts []jetstream.PublishOpt
	if id := singleEventID(body); id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	if _, err := js.Publish(ctx, subject, body, opts...); err != nil {
		return fmt.Errorf("enqueue event: %w", err)
	}
	return nil
}

// singleEventID returns the "id" member of a body that is one JSON object,
// matching the name case-insensitively like the decoder does.
func singleEventID(body []byte) string {
	if t := bytes.TrimSpace(body); len(t) == 0 || t[0] != '{' {
		return ""
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	for k, v := range m {
		if strings.EqualFold(strings.TrimSpace(k), "id") {
			var id string
			if json.Unmarshal(v, &id) == nil {
				return strings.TrimSpace(id)
			}
		}
	}
	return ""
}
