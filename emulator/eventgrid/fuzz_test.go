package eventgrid

import (
	"bytes"
	"net/url"
	"testing"
)

// FuzzDecodePublish checks that any publish body is either refused with a
// BadRequest or accepted as events that are valid CloudEvents and stable
// under a second normalisation.
func FuzzDecodePublish(f *testing.F) {
	for _, s := range []string{
		`{"data_base64":"ZXZlbnQgb25l","datacontenttype":"application/octet-stream","id":"00000000-0000-0000-0000-000000000000","source":"Sanitized","specversion":"1.0","time":"2023-06-17T00:33:32Z","type":"world"}`,
		`{"id":"e73528e1-ca00-b4c6-cbfe-9bde683f6cb8","source":"employee_source","type":"type","data":{"Name":"Bob","Age":18},"time":"2024-04-10T10:06:20.6359982-07:00","specversion":"1.0"}`,
		`[{"id":"","source":"","specversion":"","type":""}]`,
		`[{"id":"1","source":"s","specversion":"1.0","type":"t","data":"hello world","subject":"k","ext":1}]`,
		`[]`, `null`, `{`, `"x"`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		evs, werr := decodePublish(body)
		if werr != nil {
			if werr.status != 400 || werr.code != codeBadRequest {
				t.Fatalf("refusal %d %s, want 400 BadRequest", werr.status, werr.code)
			}
			return
		}
		for _, ev := range evs {
			again, werr := normaliseEvent(ev)
			if werr != nil || !bytes.Equal(again, ev) {
				t.Fatalf("normalised event %s not stable: %s %v", ev, again, werr)
			}
			if ce := cloudEventOf(ev); ce.ID == "" || ce.SpecVersion != "1.0" {
				t.Fatalf("accepted event %s lacks id or specversion", ev)
			}
		}
	})
}

// FuzzDecodeSettle checks settle body and query decoding never panic and only
// answer 400s.
func FuzzDecodeSettle(f *testing.F) {
	f.Add([]byte(`{"lockTokens":["fake-lock-token"]}`), "releaseDelayInSeconds=10&maxEvents=3&maxWaitTime=10")
	f.Add([]byte(`{"lockTokens":[]}`), "maxWaitTime=121")
	f.Add([]byte(`{"lockTokens":["faketoken", 1]}`), "maxEvents=-20")
	f.Add([]byte(`[]`), "releaseDelayInSeconds=5")
	f.Fuzz(func(t *testing.T, body []byte, query string) {
		tokens, werr := decodeLockTokens(body)
		if werr == nil {
			for _, tok := range tokens {
				_ = validLockToken(tok)
			}
		} else if werr.status != 400 {
			t.Fatalf("settle body refused with %d", werr.status)
		}
		q, err := url.ParseQuery(query)
		if err != nil {
			return
		}
		if n, wait, werr := receiveParams(q); werr == nil && (n < 1 || n > 100 || wait.Seconds() < 10 || wait.Seconds() > 120) {
			t.Fatalf("accepted maxEvents=%d maxWaitTime=%v", n, wait)
		}
		_, _ = releaseDelay(q)
	})
}

// FuzzParseRoute checks that paths route only to known shapes.
func FuzzParseRoute(f *testing.F) {
	for _, s := range []string{
		"/topics/topic:publish", "/topics/topic/eventsubscriptions/subscription:receive",
		"/topics/t%3Ax/eventsubscriptions/s:acknowledge", "/topics/:publish", "/topics/a/b:publish", "/",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		rt, ok := parseRoute(path)
		if !ok {
			return
		}
		if rt.topic == "" || (rt.sub == "" && rt.op != "publish") {
			t.Fatalf("route %+v from %q", rt, path)
		}
	})
}

func TestLockTokenShape(t *testing.T) {
	p := newPartition()
	tok := newLockToken(p)
	if !validLockToken(tok) || validLockToken("faketoken") || validLockToken("fake-lock-token") {
		t.Fatal("token validation does not tell ours from others")
	}
	if len(tok) != 80 {
		t.Errorf("token length %d, want 80 like the service's", len(tok))
	}
}
