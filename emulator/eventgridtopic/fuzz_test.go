package eventgridtopic

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
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

// FuzzCheckSAS checks that any aeg-sas-token is either refused with a 401
// or carries the signature of the topic's key. The checked-in corpus holds
// valid, expired and foreign tokens signed with that key.
func FuzzCheckSAS(f *testing.F) {
	const origin = "https://127.0.0.1:8443"
	s := &Server{cfg: Config{Name: "topic1"}, origin: origin, sasKey: decodeKey("MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=")}
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	f.Add("r=x&e=11%2F30%2F2026+10%3A00%3A00+AM&s=")
	f.Add("&s=&s=")
	f.Add("r=%zz&e=1&s=%")
	f.Fuzz(func(t *testing.T, tok string) {
		werr := s.checkSAS(tok, now)
		if werr != nil {
			if werr.status != http.StatusUnauthorized || werr.code != codeUnauthorized {
				t.Fatalf("refusal %d %s, want 401 Unauthorized", werr.status, werr.code)
			}
			return
		}
		i := strings.LastIndex(tok, "&s=")
		mac := hmac.New(sha256.New, s.sasKey)
		mac.Write([]byte(tok[:i]))
		if sig, _ := url.QueryUnescape(tok[i+3:]); sig != base64.StdEncoding.EncodeToString(mac.Sum(nil)) {
			t.Fatalf("token %q accepted without a valid signature", tok)
		}
	})
}
