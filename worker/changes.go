package worker

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/cmkd-io/cmkd/store"
)

// runChanges resumes key changes (`cmkd tenant set-key`) that no process
// is carrying out — the command was stopped, or its process died — every
// probe interval, one tenant at a time, each under its change lease.
func (w *Worker) runChanges(ctx context.Context) error {
	holder := holderID(w.cfg.Instance)
	t := time.NewTicker(w.cfg.ProbeInterval)
	defer t.Stop()
	for {
		w.resumeChanges(ctx, holder)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (w *Worker) resumeChanges(ctx context.Context, holder string) {
	ts, err := w.store.PendingKeyChanges(ctx)
	if err != nil {
		if ctx.Err() == nil {
			w.log.Warn("list key changes", slog.Any("err", err))
		}
		return
	}
	for _, t := range ts {
		st, err := w.store.CarryOutKeyChange(ctx, t.ID, holder, w.cfg.LeaseTTL, nil)
		switch {
		case errors.Is(err, store.ErrLeaseHeld), ctx.Err() != nil:
		case err != nil:
			w.log.Warn("key change stopped; it is tried again at the next interval", slog.String("tenant", t.ID), slog.Any("err", err))
		default:
			w.log.Info("key change resumed and completed", slog.String("tenant", t.ID), slog.Int("deks", st.Seen), slog.Int("moved", st.Moved))
		}
	}
}
