package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/cmkd-io/cmkd"
)

// ChangeStats counts a key change's DEKs.
type ChangeStats struct {
	// Seen is the DEKs looked at so far; Moved those this run moved into
	// the tenant's layers.
	Seen, Moved int
	// Conflicts counts DEKs another writer changed while this run moved
	// them; they are taken again.
	Conflicts int
}

// changeConcurrency bounds the DEKs a key change moves at once: each costs
// one or two Key Vault calls, and the vault's limiter, not this, decides the
// rate.
const changeConcurrency = 16

// changePage is how many DEKs a key change reads at a time.
const changePage = 256

// SetKey begins changing tenant's customer key to key (versionless), or,
// with key zero, to the platform layer alone: from now on new DEKs go
// under the new layers, and MoveDEKs moves the existing ones. ev (kind
// key.change.started, filled in where empty) goes to the outbox in the
// same transaction. Setting the key the tenant has already changes nothing.
func (s *Store) SetKey(ctx context.Context, tenant string, key cmkd.KeyID, ev cmkd.StatusEvent) (Tenant, error) {
	t, err := s.Tenant(ctx, tenant)
	if err != nil {
		return Tenant{}, err
	}
	if err := s.checkCustomerKey(key); err != nil {
		return Tenant{}, wrapErr("set key of", tenant, err)
	}
	if key.IsZero() && t.PlatformKey.IsZero() {
		return Tenant{}, wrapErr("set key of", tenant, fmt.Errorf("%w: the tenant has no platform layer", ErrNoKey))
	}
	if key == t.Key {
		return t, nil
	}
	if t.Change != nil {
		return Tenant{}, wrapErr("set key of", tenant, fmt.Errorf("%w: from %s to %s since %s",
			ErrChangeInProgress, keyName(t.Change.From), keyName(t.Key), t.Change.Since.Format(time.RFC3339)))
	}
	ev = s.event(ev, cmkd.KindKeyChangeStarted, tenant)
	ev.Key, ev.Layer, ev.PreviousKey = key, LayerCustomer, t.Key
	if key.IsZero() {
		ev.Key, ev.Layer = t.PlatformKey, LayerPlatform
	}
	if err := s.b.ChangeKey(ctx, tenant, t.Key, t.KeyVersion, key, s.now().UTC(), ev); err != nil {
		return Tenant{}, wrapErr("set key of", tenant, err)
	}
	s.log.Info("key change started", slog.String("tenant", tenant), slog.String("from", keyName(t.Key)), slog.String("to", keyName(key)))
	return s.Tenant(ctx, tenant)
}

// keyName names a customer key in messages; zero is the platform layer.
func keyName(k cmkd.KeyID) string {
	if k.IsZero() {
		return "the platform key alone"
	}
	return k.String()
}

// MoveDEKs carries out the tenant's key change: every DEK not yet in the
// tenant's layers is moved into them — unwrapped under the old keys,
// wrapped under the new, unwrapped again remotely to prove it, and swapped
// in only if its layers are still as read — then the change is recorded
// complete with key.change.completed and, when a customer key was left,
// version.retired for it: it may be disabled now. It resumes from what the
// store holds, so a crash only repeats work; with no change under way it
// does nothing. progress, if set, is called after every page.
func (s *Store) MoveDEKs(ctx context.Context, tenant string, progress func(ChangeStats)) (ChangeStats, error) {
	var st ChangeStats
	start := s.now()
	for pass := 0; ; pass++ {
		t, err := s.Tenant(ctx, tenant)
		if err != nil || t.Change == nil {
			return st, err
		}
		conflicts := st.Conflicts
		st.Seen = 0
		if err := s.movePass(ctx, t, &st, progress); err != nil {
			return st, wrapErr("change key of", tenant, err)
		}
		if st.Conflicts > conflicts && pass < 3 {
			continue // another writer moved some: look again
		}
		done, err := s.b.CompleteKeyChange(ctx, tenant, t.Key, s.changeDone(t, st, s.now().Sub(start)))
		switch {
		case errors.Is(err, ErrRewrapIncomplete) && pass < 3:
			continue
		case errors.Is(err, ErrCASConflict):
			return st, wrapErr("change key of", tenant, fmt.Errorf("the key was set again meanwhile: %w", err))
		case err != nil:
			return st, wrapErr("complete key change of", tenant, err)
		}
		if done {
			s.log.Info("key change completed", slog.String("tenant", tenant), slog.String("from", keyName(t.Change.From)),
				slog.String("to", keyName(t.Key)), slog.Int("deks", st.Seen), slog.Int("moved", st.Moved))
		}
		return st, nil
	}
}

// movePass moves, page by page, every DEK of t not in t's layers.
func (s *Store) movePass(ctx context.Context, t Tenant, st *ChangeStats, progress func(ChangeStats)) error {
	after := ""
	for {
		layers, err := s.b.TenantDEKs(ctx, t.ID, after, changePage)
		if err != nil || len(layers) == 0 {
			return err
		}
		var moved, conflicts atomic.Int64
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(changeConcurrency)
		for _, d := range groupDEKs(layers) {
			st.Seen++
			after = d[0].ID
			if HasLayers(t, d) {
				continue
			}
			g.Go(func() error {
				err := s.moveDEK(gctx, t, d)
				switch {
				case errors.Is(err, ErrCASConflict):
					conflicts.Add(1)
				case err == nil:
					moved.Add(1)
				default:
					return err
				}
				return nil
			})
		}
		err = g.Wait()
		st.Moved += int(moved.Load())
		st.Conflicts += int(conflicts.Load())
		if err != nil {
			return err
		}
		if progress != nil {
			progress(*st)
		}
	}
}

// moveDEK moves one DEK, given as its layers, into t's layers. When only
// one layer's key changes, only that layer's share is unwrapped and
// wrapped again; when layers are added or removed the DEK is split anew.
// The DEK itself never changes, so records are not touched.
func (s *Store) moveDEK(ctx context.Context, t Tenant, layers []DEK) error {
	var out []DEK
	var err error
	if sameLayers(t, layers) {
		out, err = s.rewrapLayers(ctx, t, layers)
	} else {
		var k []byte
		if k, err = s.unwrapDEK(ctx, layers); err != nil {
			return err
		}
		out, err = s.wrapLayers(ctx, t, layers[0], k)
		clear(k)
	}
	if err != nil {
		return err
	}
	for i := range out {
		out[i].Previous = nil
	}
	return s.b.ReplaceLayers(ctx, layers[0].ID, kids(layers), out)
}

// rewrapLayers wraps again, under t's key, the share of each layer whose
// key is not t's.
func (s *Store) rewrapLayers(ctx context.Context, t Tenant, layers []DEK) ([]DEK, error) {
	out := slices.Clone(layers)
	for _, tl := range t.Layers() {
		i := slices.IndexFunc(out, func(d DEK) bool { return d.Layer == tl.Layer })
		if out[i].Key == tl.Key {
			continue
		}
		share, err := s.unwrap(ctx, out[i], out[i].Current)
		if err != nil {
			return nil, err
		}
		w, err := s.kek.Wrap(ctx, wrapUnder(tl), share)
		clear(share)
		if err != nil {
			return nil, fmt.Errorf("wrap dek %s for the %s layer under %s: %w", out[i].ID, tl.Layer, tl.Key, err)
		}
		if err := s.verify(ctx, w, out[i].KCV, "dek "+out[i].ID+" "+tl.Layer+" layer"); err != nil {
			return nil, err
		}
		out[i].Key, out[i].Current = tl.Key, w
	}
	return out, nil
}

// sameLayers reports whether a DEK has exactly t's layers, whatever their
// keys.
func sameLayers(t Tenant, layers []DEK) bool {
	tl := t.Layers()
	if len(tl) != len(layers) {
		return false
	}
	for _, l := range tl {
		if !slices.ContainsFunc(layers, func(d DEK) bool { return d.Layer == l.Layer }) {
			return false
		}
	}
	return true
}

// changeDone builds the events that end t's key change.
func (s *Store) changeDone(t Tenant, st ChangeStats, took time.Duration) []cmkd.StatusEvent {
	done := s.event(cmkd.StatusEvent{Key: t.Key, Layer: LayerCustomer, Version: t.KeyVersion, PreviousKey: t.Change.From,
		DEKs: &cmkd.DEKCounts{Total: st.Seen, Rewrapped: st.Moved, Duration: took}}, cmkd.KindKeyChangeCompleted, t.ID)
	if t.Key.IsZero() {
		done.Key, done.Layer, done.Version = t.PlatformKey, LayerPlatform, t.PlatformKeyVersion
	}
	evs := []cmkd.StatusEvent{done}
	if !t.Change.From.IsZero() {
		from := t.Change.From
		evs = append(evs, s.event(cmkd.StatusEvent{Key: from, Layer: LayerCustomer, Version: t.Change.FromVersion,
			Reason: "key_changed"}, cmkd.KindVersionRetired, t.ID))
	}
	return evs
}

// ChangeLeaseName is the lease a key change of tenant runs under, so that
// one process at a time moves its DEKs.
func ChangeLeaseName(tenant string) string { return "change/" + tenant }

// CarryOutKeyChange runs MoveDEKs under the tenant's change lease, held by
// holder and renewed every ttl/3: the worker resuming a change cut short,
// and `cmkd tenant set-key`, call it. ErrLeaseHeld (a *LeaseHeldError) if
// another process is moving the tenant's DEKs; if the lease is lost
// meanwhile, the move stops and the next holder resumes it.
func (s *Store) CarryOutKeyChange(ctx context.Context, tenant, holder string, ttl time.Duration, progress func(ChangeStats)) (ChangeStats, error) {
	l, err := s.AcquireLease(ctx, ChangeLeaseName(tenant), holder, ttl)
	if err != nil {
		return ChangeStats{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		t := time.NewTicker(ttl / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				nl, rerr := s.RenewLease(ctx, l, ttl)
				if rerr != nil {
					cancel(rerr)
					return
				}
				l = nl // read again only after renewed is closed
			}
		}
	}()
	st, err := s.MoveDEKs(ctx, tenant, progress)
	cancel(nil)
	<-renewed
	if cause := context.Cause(ctx); err != nil && errors.Is(cause, ErrLeaseLost) {
		err = fmt.Errorf("%w (%w)", err, cause)
	}
	if rerr := s.ReleaseLease(context.WithoutCancel(ctx), l); rerr != nil && err == nil {
		s.log.Warn("release change lease", slog.String("tenant", tenant), slog.Any("err", rerr))
	}
	return st, err
}

// PendingKeyChanges lists the tenants whose key change is under way.
func (s *Store) PendingKeyChanges(ctx context.Context) ([]Tenant, error) {
	ts, err := s.Tenants(ctx)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(ts, func(t Tenant) bool { return t.Change == nil }), nil
}
