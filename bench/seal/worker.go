package seal

import (
	"context"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/worker"
)

// instance names the worker in leases and status events.
const instance = "bench-seal"

// runningWorker is a cmkd worker started by startWorker.
type runningWorker struct {
	exited chan struct{} // closed when Run returns; err is then set
	err    error
	cancel context.CancelFunc
}

// stop ends the worker and returns what Run returned.
func (w *runningWorker) stop() error {
	w.cancel()
	<-w.exited
	return w.err
}

// ensureStream creates the status stream before anyone reads it; the relay
// would create it too, but only once it runs.
func ensureStream(ctx context.Context, nc *nats.Conn) error {
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	_, err = status.EnsureStream(ctx, js, status.Config{Instance: instance})
	return err
}

// startWorker wires the worker as `cmkd run` does (cmd/cmkd/run.go): a
// Reconciler that broadcasts seals on NATS, the status relay as a runner,
// and the worker's own probe loop every probe.
func startWorker(ctx context.Context, env *bench.Env, nc *nats.Conn, probe time.Duration, log *slog.Logger) (*runningWorker, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	relay, err := status.NewRelay(env.Store, js, status.Config{Instance: instance, CreateStream: true, Logger: log})
	if err != nil {
		return nil, err
	}
	rec, err := handlers.New(handlers.Config{
		Store: env.Store, KEK: env.KEK, Broadcast: worker.Broadcaster(nc, log), StatusWritten: relay.Kick,
		Instance: instance, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	w, err := worker.New(worker.Config{
		Store: env.Store, Reconciler: rec, Limits: env.KEK, Instance: instance, ProbeInterval: probe,
		Runners: []worker.Runner{relay}, NATS: nc, Logger: log,
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(ctx)
	rw := &runningWorker{exited: make(chan struct{}), cancel: cancel}
	go func() {
		rw.err = w.Run(wctx)
		close(rw.exited)
	}()
	return rw, nil
}
