package worker

import (
	"context"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// SealSubject is the core NATS subject a seal is broadcast on.
func SealSubject(tenant string) string { return "cmkd.control.seal." + tenant }

// Broadcaster returns the function handlers call after persisting a seal:
// it publishes on cmkd.control.seal.<tenant>. The seal is already in the
// store, so a lost broadcast only delays cache wiping to the cache's TTL.
func Broadcaster(nc *nats.Conn, log *slog.Logger) func(tenant string) {
	if nc == nil {
		return nil
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(tenant string) {
		if err := nc.Publish(SealSubject(tenant), nil); err != nil {
			log.Warn("seal broadcast", slog.String("tenant", tenant), slog.Any("err", err))
		}
	}
}

// subscribeSeals drops this process's cached DEKs of any tenant sealed
// anywhere. A broadcast is only a hint — anybody allowed to publish on
// NATS can send one — so the store, which every seal is written to before
// its broadcast, decides: a broadcast for a tenant the store says is
// active is ignored and counted, so that forged ones cannot make every
// process unwrap every DEK again. When the store cannot answer, the cache
// is dropped: fail closed.
func (w *Worker) subscribeSeals() (func(), error) {
	if w.cfg.NATS == nil {
		return func() {}, nil
	}
	sub, err := w.cfg.NATS.Subscribe(SealSubject("*"), func(m *nats.Msg) {
		tenant := strings.TrimPrefix(m.Subject, SealSubject(""))
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if t, err := w.store.Tenant(ctx, tenant); err == nil && !t.Sealed() {
			w.metrics.ignoredBroadcasts.Inc()
			w.log.Warn("seal broadcast for a tenant that is not sealed: ignored", slog.String("tenant", tenant))
			return
		}
		w.store.Forget(tenant)
		w.log.Info("seal broadcast: dropped cached deks", slog.String("tenant", tenant))
	})
	if err != nil {
		return nil, err
	}
	// Subscriptions register asynchronously; flush so that a seal
	// broadcast right after start is not missed.
	if err := w.cfg.NATS.Flush(); err != nil {
		w.log.Warn("seal broadcast subscription not confirmed", slog.Any("err", err))
	}
	return func() { _ = sub.Unsubscribe() }, nil
}
