package seal

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/worker"
)

// arrivals records when the first message about each tenant arrived, and
// closes all once every wanted tenant has one.
type arrivals struct {
	origin time.Time
	want   int
	all    chan struct{}

	mu sync.Mutex
	at map[string]time.Duration // since origin
}

func newArrivals(origin time.Time, want int) *arrivals {
	return &arrivals{origin: origin, want: want, all: make(chan struct{}), at: map[string]time.Duration{}}
}

func (a *arrivals) add(tenant string) {
	at := time.Since(a.origin)
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.at[tenant]; ok {
		return
	}
	a.at[tenant] = at
	if len(a.at) == a.want {
		close(a.all)
	}
}

// last is the latest arrival and how many tenants have one.
func (a *arrivals) last() (time.Duration, int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var last time.Duration
	for _, at := range a.at {
		last = max(last, at)
	}
	return last, len(a.at)
}

// watchers listen, on their own NATS connection as an auditor and another
// cmkd replica would, for the status stream's sealed events and for the
// worker's seal broadcasts.
type watchers struct {
	nc        *nats.Conn
	sub       *nats.Subscription
	stream    *arrivals // kind "sealed" read back from JetStream
	broadcast *arrivals // cmkd.control.seal.<tenant>
	tailErr   chan error
	cancel    context.CancelFunc
}

// watch starts both watchers; the status stream must exist. The stream is
// read from its start and the broadcast subscription is confirmed by a
// flush, so nothing sent after watch returns is missed.
func watch(ctx context.Context, url string, origin time.Time, tenants int) (*watchers, error) {
	nc, err := nats.Connect(url, nats.Name("bench seal watcher"))
	if err != nil {
		return nil, err
	}
	w := &watchers{nc: nc, stream: newArrivals(origin, tenants), broadcast: newArrivals(origin, tenants),
		tailErr: make(chan error, 1)}
	if err := w.subscribe(); err != nil {
		nc.Close()
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	tctx, cancel := context.WithCancel(ctx)
	w.cancel = cancel
	go func() {
		w.tailErr <- status.Tail(tctx, js, status.TailOptions{Follow: true}, func(ev status.Received) error {
			if ev.Kind == cmkd.KindSealed {
				w.stream.add(ev.Tenant)
			}
			return nil
		})
	}()
	return w, nil
}

func (w *watchers) subscribe() error {
	var err error
	w.sub, err = w.nc.Subscribe(worker.SealSubject("*"), func(m *nats.Msg) {
		w.broadcast.add(strings.TrimPrefix(m.Subject, worker.SealSubject("")))
	})
	if err != nil {
		return err
	}
	return w.nc.Flush()
}

// wait returns once every tenant's sealed event is on the stream and its
// broadcast has arrived, or fails when the worker stops, the tail fails or
// timeout passes.
func (w *watchers) wait(ctx context.Context, wk *runningWorker, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for _, all := range []chan struct{}{w.stream.all, w.broadcast.all} {
		select {
		case <-all:
		case <-wk.exited:
			return fmt.Errorf("worker stopped before every tenant was sealed: %v", wk.err)
		case err := <-w.tailErr:
			return fmt.Errorf("reading the status stream: %v", err)
		case <-deadline.C:
			_, s := w.stream.last()
			_, b := w.broadcast.last()
			return fmt.Errorf("after %s: %d of %d sealed events on the stream, %d broadcasts",
				timeout, s, w.stream.want, b)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (w *watchers) close() {
	w.cancel()
	_ = w.sub.Unsubscribe()
	w.nc.Close()
}
