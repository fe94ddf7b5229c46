package eventgrid

import (
	"testing"
	"time"
)

func TestBackoffRoundsUpToAllowedDelays(t *testing.T) {
	for _, tc := range []struct {
		base     time.Duration
		count    int
		asked    time.Duration
		hasAsked bool
		want     string
	}{
		{-1, 3, 0, false, "0"},
		{10 * time.Second, 1, 0, false, "10"},
		{10 * time.Second, 2, 0, false, "60"},
		{10 * time.Second, 4, 0, false, "600"},
		{10 * time.Second, 20, 0, false, "3600"},
		{10 * time.Second, 1, 5 * time.Minute, true, "600"},
		{10 * time.Second, 1, 0, true, "10"},
		{time.Second, 1, 2 * time.Hour, true, "3600"},
	} {
		v, _ := releaseDelay(backoff(tc.base, tc.count, tc.asked, tc.hasAsked))
		if string(v) != tc.want {
			t.Errorf("base %s, delivery %d, asked %s: delay %s, want %s", tc.base, tc.count, tc.asked, v, tc.want)
		}
	}
}

func TestParseReceive(t *testing.T) {
	got, err := parseReceive([]byte(`{"value":[{"brokerProperties":{"lockToken":"fake-lock-token","deliveryCount":2},"event":{"id":"1"}}]}`))
	if err != nil || len(got) != 1 || got[0].token != "fake-lock-token" || got[0].deliveryCount != 2 || string(got[0].raw) != `{"id":"1"}` {
		t.Fatalf("parseReceive = %+v, %v", got, err)
	}
	for _, bad := range []string{`{"value":[{"event":{}}]}`, `[`, `{"value":{}}`} {
		if _, err := parseReceive([]byte(bad)); err == nil {
			t.Errorf("parseReceive(%s) succeeded", bad)
		}
	}
}

// FuzzParseReceive checks that any receive answer is either refused or
// yields deliveries that can all be settled.
func FuzzParseReceive(f *testing.F) {
	f.Add([]byte(`{"value":[{"brokerProperties":{"lockToken":"fake-lock-token","deliveryCount":1},"event":{"type":"world","source":"Sanitized","time":"2023-06-17T00:33:32Z","id":"00000000-0000-0000-0000-000000000000","datacontenttype":"application/octet-stream","specversion":"1.0","data_base64":"ZXZlbnQgb25l"}}]}`))
	f.Add([]byte(`{"value":[]}`))
	f.Add([]byte(`{"value":[{"brokerProperties":{"lockToken":""},"event":null}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := parseReceive(body)
		if err != nil {
			return
		}
		for _, d := range got {
			if d.token == "" {
				t.Fatal("delivery without a lock token")
			}
		}
	})
}
