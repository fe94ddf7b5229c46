package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/store"
)

// relayed starts the status relay on the env's store and NATS, as the
// worker runs it: what commands write to the outbox reaches CMKD_STATUS.
func relayed(t *testing.T, e *cliEnv, st *store.Store) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(e.cfg.NATS.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	r, err := status.NewRelay(st, js, status.Config{Instance: "relay", CreateStream: true, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return js
}

// waitStream waits until CMKD_STATUS holds at least n events.
func waitStream(t *testing.T, js jetstream.JetStream, n uint64) {
	t.Helper()
	eventually.True(t, 20*time.Second, fmt.Sprintf("%d events in CMKD_STATUS", n), func() bool {
		s, err := js.Stream(t.Context(), status.DefaultStream)
		if err != nil {
			return false
		}
		info, err := s.Info(t.Context())
		return err == nil && info.State.Msgs >= n
	})
}

// TestCLIAuditTail: the status events a rewrap and a seal write reach
// CMKD_STATUS through the relay, and audit tail reads them back as JSON
// lines or one readable line each, for all tenants or one.
func TestCLIAuditTail(t *testing.T) {
	e := newCLIEnv(t, true)
	_, v2 := rotated(t, e)
	e.must("rewrap", "--key", e.keyURL("cmk"))
	d := e.deps()
	// A reason is free text (Key Vault's message may end up in it): it must
	// not break the one line per event.
	sealEv := cmkd.StatusEvent{Key: cmkd.MustParseKeyID(e.keyURL("cmk")), Version: v2}
	if err := d.store.Seal(t.Context(), "globex", "key disabled\nforged line", sealEv); err != nil {
		t.Fatal(err)
	}
	js := relayed(t, e, d.store)
	waitStream(t, js, 1)
	var all []cmkd.StatusEvent
	deadline := time.Now().Add(20 * time.Second)
	for !hasKind(all, "globex", cmkd.KindSealed) || !hasKind(all, "acme", cmkd.KindRewrapCompleted) {
		if time.Now().After(deadline) {
			t.Fatalf("audit tail --json read %d events without acme's rewrap.completed and globex's sealed", len(all))
		}
		all = tailJSON(t, e)
	}
	if n := strings.Count(e.must("audit", "tail", "--since", "1h", "--json"), "\n"); n != len(all) {
		t.Fatalf("audit tail --since 1h printed %d events, want all %d published just now", n, len(all))
	}
	seen := map[string]bool{}
	for _, ev := range all {
		if seen[ev.ID] {
			t.Fatalf("event %s printed twice", ev.ID)
		}
		seen[ev.ID] = true
	}

	text := e.must("audit", "tail", "--tenant", "globex")
	lines := strings.Split(strings.TrimSpace(text), "\n")
	for _, l := range lines {
		if !strings.Contains(l, "  globex ") {
			t.Errorf("audit tail --tenant globex printed another tenant's line %q", l)
		}
	}
	sealed := lines[len(lines)-1]
	for _, want := range []string{"sealed", e.keyURL("cmk"), `"key disabled\nforged line"`} {
		if !strings.Contains(sealed, want) {
			t.Errorf("sealed line %q lacks %q", sealed, want)
		}
	}
	if !strings.Contains(text, "rewrap.completed") || !strings.Contains(text, v2) {
		t.Errorf("globex's lines lack its rewrap.completed to %s:\n%s", v2, text)
	}
}

func hasKind(evs []cmkd.StatusEvent, tenant string, kind cmkd.Kind) bool {
	for _, ev := range evs {
		if ev.Tenant == tenant && ev.Kind == kind {
			return true
		}
	}
	return false
}

func tailJSON(t *testing.T, e *cliEnv) []cmkd.StatusEvent {
	t.Helper()
	var evs []cmkd.StatusEvent
	for l := range strings.Lines(e.must("audit", "tail", "--json")) {
		ev, err := cmkd.ParseStatusEvent([]byte(l))
		if err != nil {
			t.Fatalf("audit tail --json line %q: %v", l, err)
		}
		evs = append(evs, ev)
	}
	return evs
}

// TestCLIAuditTailFollow: --follow prints events as they are published and
// ends cleanly (exit 0) when interrupted.
func TestCLIAuditTailFollow(t *testing.T) {
	e := newCLIEnv(t, true)
	e.createKey("cmk")
	e.must("tenant", "add", "acme", "--key", e.keyURL("cmk"))
	d := e.deps()
	js := relayed(t, e, d.store)
	if err := d.store.AppendOutbox(t.Context(), cmkd.StatusEvent{Kind: cmkd.KindKeyNearExpiry, Tenant: "acme",
		Key: cmkd.MustParseKeyID(e.keyURL("cmk"))}); err != nil {
		t.Fatal(err)
	}
	waitStream(t, js, 1)

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	out := &lockedBuffer{}
	exit := make(chan int, 1)
	go func() {
		exit <- run(ctx, []string{"audit", "tail", "--follow", "--config", e.config}, out, &lockedBuffer{})
	}()
	waitOutput(t, out, "key.near_expiry")
	if err := d.store.Seal(t.Context(), "acme", "access revoked", cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	waitOutput(t, out, "access revoked")
	cancel()
	select {
	case code := <-exit:
		if code != exitOK {
			t.Fatalf("interrupted audit tail --follow exited %d", code)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("audit tail --follow did not stop when interrupted")
	}
}

func TestCLIAuditTailSaysWhatIsMissing(t *testing.T) {
	e := newCLIEnv(t, false)
	if errs := e.wantExit(exitError, "audit", "tail"); !strings.Contains(errs, "nats.url") {
		t.Fatalf("audit tail without nats.url says %q", errs)
	}
	e.cfg.NATS.URL = cliNATS(t).ClientURL()
	e.writeConfig()
	if errs := e.wantExit(exitError, "audit", "tail"); !strings.Contains(errs, "CMKD_STATUS") {
		t.Fatalf("audit tail without a status stream says %q", errs)
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func waitOutput(t *testing.T, out *lockedBuffer, want string) {
	t.Helper()
	eventually.True(t, 20*time.Second, fmt.Sprintf("%q in the output", want), func() bool { return strings.Contains(out.String(), want) })
}

// FuzzAuditLine: whatever a status document holds, audit tail prints it on
// one line with no control characters.
func FuzzAuditLine(f *testing.F) {
	ev := func(data string) string {
		return `{"specversion":"1.0","id":"e1","source":"cmkd/a","type":"io.cmkd.sealed","subject":"acme",` +
			`"time":"2026-01-02T03:04:05Z","data":` + data + `}`
	}
	f.Add([]byte(ev(`{"tenant":"acme","key":"https://v.vault.azure.net/keys/k","version":"abc","reason":"key disabled"}`)))
	f.Add([]byte(ev(`{"reason":"line\nforged 2026-01-01 acme unsealed"}`)))
	f.Add([]byte(ev(`{"reason":"\u001b[2Jcleared","x\ny":{"nested":["a\rb"]}}`)))
	f.Add([]byte(ev(`{"reason":"\u202eesrever"}`)))
	f.Add([]byte(ev(`null`)))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := cmkd.ParseStatusEvent(b)
		if err != nil {
			return
		}
		line := auditLine(e)
		if strings.ContainsFunc(line, unsafeRune) {
			t.Fatalf("audit line %q holds a control character", line)
		}
	})
}
