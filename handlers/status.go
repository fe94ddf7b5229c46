package handlers

import (
	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// statusEvent builds a status event of kind for tenant t about the key req
// names. A non-empty dedupe becomes part of the event id, so writing the
// same fact twice (a replayed event, a resumed rewrap) publishes it once:
// the outbox ignores an id it already holds.
func (r *Reconciler) statusEvent(kind cmkd.Kind, t store.Tenant, req Request, version, dedupe string) cmkd.StatusEvent {
	ev := cmkd.StatusEvent{
		Kind: kind, Tenant: t.ID, Time: r.cfg.Now().UTC(),
		Key: req.Key, Version: version, Cause: req.Cause, Layer: t.LayerOf(req.Key),
	}
	if dedupe != "" {
		ev.ID = string(kind) + ":" + t.ID + ":" + dedupe
	}
	return ev
}

// eventsFor builds one event per tenant; fill, when set, completes each.
func (r *Reconciler) eventsFor(tenants []store.Tenant, kind cmkd.Kind, req Request, version, dedupe string,
	fill func(*cmkd.StatusEvent, store.Tenant)) []cmkd.StatusEvent {
	evs := make([]cmkd.StatusEvent, 0, len(tenants))
	for _, t := range tenants {
		ev := r.statusEvent(kind, t, req, version, dedupe)
		if fill != nil {
			fill(&ev, t)
		}
		evs = append(evs, ev)
	}
	return evs
}

func (r *Reconciler) statusWritten() {
	if r.cfg.StatusWritten != nil {
		r.cfg.StatusWritten()
	}
}
