package events_test

import (
	"encoding/json"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"

	"github.com/cmkd-io/cmkd/events"
)

// TestDecodeCloudEventFromSDK follows the pull source's path: aznamespaces
// hands out messaging.CloudEvent values whose Data is the raw JSON, and
// json.Marshal re-encodes that as data_base64.
func TestDecodeCloudEventFromSDK(t *testing.T) {
	var ce messaging.CloudEvent
	if err := json.Unmarshal(readSample(t, "ce-key-near-expiry-camel.json"), &ce); err != nil {
		t.Fatal(err)
	}
	body, err := json.Marshal(ce)
	if err != nil {
		t.Fatal(err)
	}
	ev, relevant, err := events.NewDecoder(events.DecoderConfig{}).DecodeCloudEvent(body)
	if err != nil || !relevant {
		t.Fatalf("DecodeCloudEvent(%s) = %v, %v", body, relevant, err)
	}
	if ev.Type != events.TypeKeyNearExpiry || ev.Key.URL() != "https://sample-kv.vault.azure.net/keys/tenant-key" ||
		ev.Key.Version != "0123456789abcdef0123456789abcdef" || ev.Expires.Unix() != 1711929600 {
		t.Errorf("got %+v", ev)
	}
}
