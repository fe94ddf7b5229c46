package status_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/internal/eventually"
)

// tailIDs tails js without following and returns the event ids read.
func tailIDs(t *testing.T, js jetstream.JetStream, opts status.TailOptions) []string {
	t.Helper()
	ids := []string{}
	err := status.Tail(t.Context(), js, opts, func(e status.Received) error {
		ids = append(ids, e.ID)
		return nil
	})
	if err != nil {
		t.Fatalf("tail %+v: %v", opts, err)
	}
	return ids
}

func TestTailFiltersByTenantAndStopsAtTheEnd(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	st := newStore(t)
	for i, tenant := range []string{"acme", "globex", "acme", "acme"} {
		if err := st.AppendOutbox(t.Context(), event(i, tenant, cmkd.KindSealed)); err != nil {
			t.Fatal(err)
		}
	}
	runRelay(t, st, js, testConfig("r1"))
	waitStream(t, js, 4)

	for _, tc := range []struct {
		tenant string
		want   []string
	}{
		{"", []string{"ev-0000", "ev-0001", "ev-0002", "ev-0003"}},
		{"acme", []string{"ev-0000", "ev-0002", "ev-0003"}},
		{"globex", []string{"ev-0001"}}, // not the newest event in the stream
		{"initech", []string{}},
	} {
		start := time.Now()
		if ids := tailIDs(t, js, status.TailOptions{Tenant: tc.tenant}); !slices.Equal(ids, tc.want) {
			t.Errorf("tail --tenant %q read %v, want %v in order", tc.tenant, ids, tc.want)
		}
		// Without Follow, Tail ends when it has read the last event; it
		// does not sit out a fetch timeout.
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("tail --tenant %q took %s to stop", tc.tenant, d)
		}
	}
	// A tail leaves no consumer behind: an auditor's script that runs
	// `cmkd status` in a loop must not fill the server's consumer limit.
	s, err := js.Stream(t.Context(), status.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.Consumers; n != 0 {
		t.Errorf("%d consumers left on the stream after the tails ended, want 0", n)
	}
}

func TestTailSinceSkipsOlderEvents(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	st := newStore(t)
	runRelay(t, st, js, testConfig("r1"))
	write(t, st, 0, 2)
	old := waitStream(t, js, 2)
	// Since filters by the time JetStream stored an event, so make a gap
	// between the old events and the new ones and cut in its middle.
	s, err := js.Stream(t.Context(), status.DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	last, err := s.GetMsg(t.Context(), old[1].Seq)
	if err != nil {
		t.Fatal(err)
	}
	eventually.True(t, 5*time.Second, "the clock has moved on", func() bool { return time.Since(last.Time) > 400*time.Millisecond })
	write(t, st, 2, 2)
	waitStream(t, js, 4)

	since := time.Since(last.Time) - 200*time.Millisecond
	if ids := tailIDs(t, js, status.TailOptions{Since: since}); !slices.Equal(ids, []string{"ev-0002", "ev-0003"}) {
		t.Errorf("tail --since %s read %v, want the two new events", since, ids)
	}
	if ids := tailIDs(t, js, status.TailOptions{Since: time.Millisecond}); len(ids) != 0 {
		t.Errorf("tail --since 1ms read %v, want nothing", ids)
	}
	if ids := tailIDs(t, js, status.TailOptions{Since: time.Hour, Tenant: "acme"}); len(ids) != 4 {
		t.Errorf("tail --since 1h --tenant acme read %v, want all 4", ids)
	}
}

func TestTailFollowsUntilCancelled(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	st := newStore(t)
	runRelay(t, st, js, testConfig("r1"))
	write(t, st, 0, 1)
	waitStream(t, js, 1)

	ctx, cancel := context.WithCancel(t.Context())
	got := make(chan string, 10)
	done := make(chan error, 1)
	go func() {
		done <- status.Tail(ctx, js, status.TailOptions{Tenant: "acme", Follow: true}, func(e status.Received) error {
			got <- e.ID
			return nil
		})
	}()
	write(t, st, 1, 2)
	for _, want := range []string{"ev-0000", "ev-0001", "ev-0002"} {
		select {
		case id := <-got:
			if id != want {
				t.Fatalf("followed %s, want %s", id, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("tail --follow did not deliver %s", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("tail --follow returned %v when cancelled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("tail --follow did not stop when cancelled")
	}
}

func TestTailReportsFnErrorsAndBadInput(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	js := jsFor(t, ns.ClientURL())
	st := newStore(t)
	runRelay(t, st, js, testConfig("r1"))
	write(t, st, 0, 2)
	waitStream(t, js, 2)

	stop := errors.New("stop")
	n := 0
	if err := status.Tail(t.Context(), js, status.TailOptions{}, func(status.Received) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Tail returned %v after %d calls, want fn's error after 1", err, n)
	}
	if err := status.Tail(t.Context(), js, status.TailOptions{Tenant: "a.*"}, func(status.Received) error { return nil }); !errors.Is(err, cmkd.ErrInvalidTenant) {
		t.Errorf("Tail with tenant a.* returned %v, want ErrInvalidTenant", err)
	}
	// Something else published onto a status subject.
	if _, err := js.Publish(t.Context(), "cmkd.status.acme.sealed", []byte(`not json`)); err != nil {
		t.Fatal(err)
	}
	if err := status.Tail(t.Context(), js, status.TailOptions{}, func(status.Received) error { return nil }); !errors.Is(err, cmkd.ErrInvalidStatusEvent) {
		t.Errorf("Tail over a foreign message returned %v, want ErrInvalidEvent", err)
	}
}
