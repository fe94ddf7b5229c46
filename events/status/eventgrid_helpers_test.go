package status_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"

	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/store"
)

const topicKey = "k"

// startTopic starts an Event Grid topic emulator, closed when the test ends.
func startTopic(t *testing.T, cfg eventgridtopic.Config) *eventgridtopic.Server {
	t.Helper()
	cfg.Addr, cfg.Key = "127.0.0.1:0", topicKey
	s, err := eventgridtopic.Start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close topic emulator: %v", err)
		}
	})
	return s
}

// gridClient is the real client on the emulator, with key. It does not
// retry: the relay's own retries are what the tests are about.
func gridClient(t *testing.T, s *eventgridtopic.Server, key string) *azeventgrid.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool(), MinVersion: tls.VersionTLS12}}
	t.Cleanup(tr.CloseIdleConnections)
	c, err := azeventgrid.NewClientWithSharedKeyCredential(s.URL(), azcore.NewKeyCredential(key),
		&azeventgrid.ClientOptions{ClientOptions: azcore.ClientOptions{
			Transport: &http.Client{Transport: tr},
			Retry:     policy.RetryOptions{MaxRetries: -1},
		}})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// gridConfig polls and retries fast, so tests wait for milliseconds.
func gridConfig(name string) status.EventGridConfig {
	return status.EventGridConfig{Instance: name, Interval: 20 * time.Millisecond, Backoff: 20 * time.Millisecond,
		AuthBackoff: 50 * time.Millisecond}
}

// startGridRelay runs an Event Grid relay until stop, or the test's end.
func startGridRelay(t *testing.T, st *store.Store, c *azeventgrid.Client, cfg status.EventGridConfig) (r *status.EventGridRelay, stop func()) {
	t.Helper()
	// As a deployment adding the sink would, so that the events the test
	// writes before the relay's first claim are the sink's.
	if err := st.RegisterOutboxSink(t.Context(), status.DefaultEventGridSink); err != nil {
		t.Fatal(err)
	}
	r, err := status.NewEventGridRelay(st, c, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- r.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("event grid relay Run returned %v after its context ended", err)
		}
	})
	t.Cleanup(stop)
	return r, stop
}

// waitTopic waits until the topic accepted n events and returns them all.
func waitTopic(t *testing.T, s *eventgridtopic.Server, n int) []eventgridtopic.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	evs, err := s.WaitPublished(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

// topicCounts counts the topic's events by id.
func topicCounts(evs []eventgridtopic.Event) map[string]int {
	n := map[string]int{}
	for _, e := range evs {
		n[e.ID]++
	}
	return n
}

// checkTopicHas fails unless ev-from..ev-(from+n-1) each reached the topic
// at least once and, when once is set, exactly once.
func checkTopicHas(t *testing.T, evs []eventgridtopic.Event, from, n int, once bool) {
	t.Helper()
	counts := topicCounts(evs)
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("ev-%04d", i)
		if c := counts[id]; c == 0 || once && c != 1 {
			t.Errorf("event %s reached the topic %d times", id, c)
		}
	}
}

// checkFirstSeenInOrder fails unless the first copies of the topic's
// events are in id (= write) order: the events of one tenant, as here.
func checkFirstSeenInOrder(t *testing.T, evs []eventgridtopic.Event) {
	t.Helper()
	seen, last := map[string]bool{}, ""
	for _, e := range evs {
		if seen[e.ID] {
			continue
		}
		seen[e.ID] = true
		if e.ID < last {
			t.Errorf("the topic got %s after %s: out of write order", e.ID, last)
		}
		last = e.ID
	}
}
