package chaos

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
)

// The checks must be able to fail: each is fed a history that breaks its
// invariant.

func newTestRunner() *runner {
	r := &runner{t: Config{}.timings(), hist: newHistory(nil), truth: newTruth(), res: &Result{}}
	r.tenants = []tenant{{ID: "a", Key: "https://v.vault.azure.net/keys/k"}, {ID: "b", Key: "https://v.vault.azure.net/keys/k"}}
	return r
}

func sealRow(tenant, reason string, at time.Time) outboxRow {
	return outboxRow{Event: cmkd.StatusEvent{ID: tenant + reason + at.String(), Kind: cmkd.KindSealed, Tenant: tenant, Reason: reason, Time: at}}
}

func TestCheckSealsFindsFalseAndMissedSeals(t *testing.T) {
	r := newTestRunner()
	key := r.tenants[0].Key
	t0 := time.Now().Add(-time.Minute)
	r.truth.outages = []outage{{Key: key, Reason: cmkd.ReasonDisabled, From: t0, To: t0.Add(10 * time.Second)}}
	rows := []outboxRow{
		sealRow("a", cmkd.ReasonDisabled, t0.Add(800*time.Millisecond)), // true, in time
		sealRow("a", cmkd.ReasonAccessDenied, t0.Add(time.Second)),      // false: the key was disabled, not revoked
		sealRow("b", cmkd.ReasonDisabled, t0.Add(30*time.Second)),       // false: long after the outage; and b missed it
		sealRow("a", cmkd.ReasonUnreachable, t0.Add(40*time.Second)),    // false: no outage at all
	}
	r.checkSeals(rows)
	f := r.res.Figures
	if f.FalseSeals != 3 || f.MissedSeals != 1 || f.Seals != 4 {
		t.Fatalf("false %d, missed %d, seals %d; want 3, 1, 4\n%+v", f.FalseSeals, f.MissedSeals, f.Seals, r.res.Violations)
	}
	if f.MaxTimeToSeal != 800*time.Millisecond {
		t.Errorf("max time to seal %s, want 800ms", f.MaxTimeToSeal)
	}
}

func TestCheckSealsJudgesUnreachableByTheGrace(t *testing.T) {
	r := newTestRunner()
	key := r.tenants[0].Key
	t0 := time.Now().Add(-time.Minute)
	short := outage{Key: key, Reason: cmkd.ReasonUnreachable, From: t0, To: t0.Add(r.t.grace / 2)}
	long := outage{Key: key, Reason: cmkd.ReasonUnreachable, From: t0.Add(20 * time.Second), To: t0.Add(20*time.Second + r.t.grace + 5*time.Second)}
	r.truth.outages = []outage{short, long}
	r.checkSeals([]outboxRow{
		sealRow("a", cmkd.ReasonUnreachable, t0.Add(time.Second)),                           // within the grace: false
		sealRow("a", cmkd.ReasonUnreachable, long.From.Add(r.t.grace+500*time.Millisecond)), // past it: true
	})
	f := r.res.Figures
	if f.FalseSeals != 1 || f.MissedSeals != 1 { // b never sealed in the long outage
		t.Fatalf("false %d, missed %d; want 1, 1\n%+v", f.FalseSeals, f.MissedSeals, r.res.Violations)
	}
}

func TestSecretScannerFindsEveryForm(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789ABCDEF")
	s := newSecretScanner([][]byte{secret})
	for name, b := range map[string][]byte{
		"raw":       append([]byte("xx"), secret...),
		"hex":       []byte(`{"dek":"` + hex.EncodeToString(secret) + `"}`),
		"HEX":       []byte("k=" + strings.ToUpper(hex.EncodeToString(secret))),
		"base64":    []byte("msg=" + base64.StdEncoding.EncodeToString(secret)),
		"base64url": []byte(base64.RawURLEncoding.EncodeToString(secret)),
	} {
		if !s.scan(b) {
			t.Errorf("%s: not found", name)
		}
	}
	if s.scan([]byte("nothing here " + hex.EncodeToString(secret[:8]))) {
		t.Error("a prefix of the secret counted as the secret")
	}
}

func TestLedgerAcceptsWhatMayHaveLanded(t *testing.T) {
	l := newLedger()
	id := recordID{"a", "r"}
	l.put(id, []byte("v1"), nil)
	l.put(id, []byte("v2"), errTest) // failed: may or may not have landed
	for v, want := range map[string]bool{"v1": true, "v2": true, "v3": false} {
		if _, ok := l.allowed(id, []byte(v)); ok != want {
			t.Errorf("after v1 acked and v2 failed, reading %s allowed = %v", v, ok)
		}
	}
	l.put(id, []byte("v3"), nil)
	if _, ok := l.allowed(id, []byte("v2")); ok {
		t.Error("a failed write's value is still allowed after a later acknowledged one")
	}
}

var errTest = errorString("test")

type errorString string

func (e errorString) Error() string { return string(e) }

// A 429 storm longer than the grace may seal as unreachable, never must;
// one within the grace's start may not.
func TestCheckSealsTakeAStormPastTheGraceAsUnreachable(t *testing.T) {
	r := newTestRunner()
	key := r.tenants[0].Key
	t0 := time.Now().Add(-time.Minute)
	r.truth.outages = []outage{{Key: key, Reason: throttled, From: t0, To: t0.Add(2 * r.t.grace)}}
	r.checkSeals([]outboxRow{
		sealRow("a", cmkd.ReasonUnreachable, t0.Add(r.t.grace+time.Second)), // true
		sealRow("b", cmkd.ReasonUnreachable, t0.Add(time.Second)),           // false: 1 s into the storm
	})
	if f := r.res.Figures; f.FalseSeals != 1 || f.MissedSeals != 0 {
		t.Fatalf("false %d, missed %d; want 1, 0 (a storm requires no seal)\n%+v", f.FalseSeals, f.MissedSeals, r.res.Violations)
	}
}
