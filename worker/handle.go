package worker

import (
	"context"
	"errors"
	"fmt"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/handlers"
)

// Handle is the events.Handler every source delivers to (through Wrap's
// middleware). It never trusts the event: it only names the key (or, for an
// access policy change, the vault) to probe now.
func (w *Worker) Handle(ctx context.Context, ev events.Event) error { return w.handle(ctx, ev) }

func (w *Worker) handle(ctx context.Context, ev events.Event) error {
	var keys []cmkd.KeyID
	switch {
	case !ev.Key.IsZero():
		keys = []cmkd.KeyID{ev.Key.Versionless()}
	case ev.Vault != "":
		var err error
		if keys, err = w.keysInUse(ctx, ev.Vault); err != nil {
			return fmt.Errorf("keys of vault %s: %w", ev.Vault, err)
		}
	default:
		return events.Permanent(fmt.Errorf("event %s names neither a key nor a vault", ev.ID))
	}
	var errs []error
	for _, k := range keys {
		res, err := w.Reconcile(ctx, handlers.Request{Key: k, Cause: ev.ID})
		switch {
		case err == nil && res.Outcome == handlers.Waiting:
			// Key Vault could not be asked: the check the event asks for
			// has not happened. Acknowledging it would leave a rotation to
			// the next probe; asking for it again lets the source's retry
			// (Event Grid's schedule, a release, a nak) bring it back.
			errs = append(errs, events.Transient(fmt.Errorf("key %s: Key Vault did not answer; the event's check is still to do", k), 0))
		case errors.Is(err, ErrBusy):
			// Another replica is reconciling the key now; a probe that
			// started before this event may miss what it announced, so
			// ask for the event again shortly.
			errs = append(errs, events.Transient(err, w.cfg.LeaseTTL/3))
		case err != nil:
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keysInUse lists the keys some tenant uses in vault.
func (w *Worker) keysInUse(ctx context.Context, vault string) ([]cmkd.KeyID, error) {
	uses, err := w.store.Keys(ctx)
	if err != nil {
		return nil, err
	}
	var keys []cmkd.KeyID
	for _, u := range uses {
		if u.Key.Vault == vault {
			keys = append(keys, u.Key)
		}
	}
	return keys, nil
}
