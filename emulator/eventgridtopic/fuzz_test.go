package eventgridtopic

import (
	"encoding/json"
	"net/http"
	"testing"
)

var fuzzContentTypes = []string{
	"application/cloudevents-batch+json; charset=utf-8",
	"application/cloudevents+json",
	"application/json",
	"text/plain",
}

// FuzzDecodePublish checks that any publish body is either refused with a
// 400 BadRequest or accepted as events that carry their required attributes
// and decode again to the same event.
func FuzzDecodePublish(f *testing.F) {
	f.Add(uint8(0), []byte(`[{"specversion":"1.0","id":"1","source":"/vaults/v1","type":"Microsoft.KeyVault.KeyNewVersionCreated","subject":"key1","time":"2026-01-02T03:04:05.123Z","data":{"ObjectName":"key1"}}]`))
	f.Add(uint8(1), []byte(`{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"ZXZlbnQ="}`))
	f.Add(uint8(2), []byte(`[{"id":"1","eventType":"t","subject":"s","eventTime":"2026-01-02T03:04:05Z","dataVersion":"1","data":{"a":1}}]`))
	f.Add(uint8(0), []byte(`[null, 1, "x"]`))
	f.Add(uint8(3), []byte(`[]`))
	lim := limits{maxEvent: 1 << 10, topicID: "/subscriptions/0/topics/t"}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte) {
		ct := fuzzContentTypes[int(kind)%len(fuzzContentTypes)]
		evs, werr := decodePublish(ct, body, lim)
		if werr != nil {
			if werr.status != http.StatusBadRequest || werr.code != codeBadRequest {
				t.Fatalf("refusal %d %s, want 400 BadRequest", werr.status, werr.code)
			}
			return
		}
		for _, ev := range evs {
			if ev.ID == "" || ev.Type == "" || ev.Source == "" || !json.Valid(ev.Raw) {
				t.Fatalf("accepted event lacks required attributes: %+v", ev)
			}
			var again Event
			if ev.Schema == SchemaCloudEvents {
				again, werr = decodeCloudEvent(ev.Raw)
			} else {
				again, werr = decodeEventGridEvent(ev.Raw, lim.topicID)
			}
			if werr != nil || again.ID != ev.ID || again.Type != ev.Type || again.Source != ev.Source ||
				again.Subject != ev.Subject || !again.Time.Equal(ev.Time) || string(again.Data) != string(ev.Data) {
				t.Fatalf("stored event %s does not decode to itself: %+v %v", ev.Raw, again, werr)
			}
		}
	})
}
