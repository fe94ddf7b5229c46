package eventgrid

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"
)

// delivery is one received event: its lock token, how often it has been
// delivered, and the CloudEvent exactly as the service sent it.
type delivery struct {
	token         string
	deliveryCount int
	raw           json.RawMessage
}

// receive asks for up to n events. It reads the response body itself rather
// than the SDK's decoded CloudEvents: the handler's audit copy must be the
// event as delivered, and an event the SDK cannot decode must still be
// rejected by its lock token instead of failing the whole receive forever.
func (s *Source) receive(ctx context.Context, n int) ([]delivery, error) {
	maxEvents, wait := int32(n), int32(s.cfg.MaxWait.Seconds()) // #nosec G115 -- Validate bounds both to Event Grid's limits (100 events, 120 s)
	var resp *http.Response
	_, err := s.client.ReceiveEvents(policy.WithCaptureResponse(ctx, &resp),
		&aznamespaces.ReceiveEventsOptions{MaxEvents: &maxEvents, MaxWaitTime: &wait})
	if err != nil && (resp == nil || resp.StatusCode != http.StatusOK) {
		return nil, fmt.Errorf("receive: %w", err)
	}
	if resp == nil {
		return nil, fmt.Errorf("receive: no response")
	}
	body, perr := runtime.Payload(resp)
	if perr != nil {
		return nil, fmt.Errorf("receive: read body: %w", perr)
	}
	return parseReceive(body)
}

// parseReceive reads a receive result:
// {"value":[{"brokerProperties":{"lockToken","deliveryCount"},"event":{...}}]}.
func parseReceive(body []byte) ([]delivery, error) {
	var res struct {
		Value []struct {
			BrokerProperties struct {
				LockToken     string `json:"lockToken"`
				DeliveryCount int    `json:"deliveryCount"`
			} `json:"brokerProperties"`
			Event json.RawMessage `json:"event"`
		} `json:"value"`
	}
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("decode receive result: %w", err)
	}
	out := make([]delivery, 0, len(res.Value))
	for i, v := range res.Value {
		if v.BrokerProperties.LockToken == "" {
			return nil, fmt.Errorf("decode receive result: value %d has no lock token", i)
		}
		out = append(out, delivery{v.BrokerProperties.LockToken, v.BrokerProperties.DeliveryCount, v.Event})
	}
	return out, nil
}
