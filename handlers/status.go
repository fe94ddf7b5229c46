package handlers

import (
	"time"

	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// statusEvent builds a status event for tenant about keyURL. A non-empty
// dedupe becomes part of the event id, so writing the same fact twice (a
// replayed event, a resumed rewrap) publishes it once: the outbox ignores an
// id it already holds.
func (r *Reconciler) statusEvent(kind, tenant, keyURL, version string, req Request, dedupe string) store.StatusEvent {
	data := map[string]any{
		"tenant":  tenant,
		"vault":   vaultOf(keyURL),
		"key":     keyURL,
		"version": version,
	}
	if req.Cause != "" {
		data["cause"] = req.Cause
	}
	ev := store.StatusEvent{Kind: kind, Tenant: tenant, Time: r.cfg.Now().UTC(), Data: data}
	if dedupe != "" {
		ev.ID = kind + ":" + tenant + ":" + dedupe
	}
	return ev
}

func vaultOf(keyURL string) string {
	id, err := kek.ParseKeyID(keyURL)
	if err != nil {
		return ""
	}
	return id.Vault
}

func millis(d time.Duration) int64 { return d.Milliseconds() }

func (r *Reconciler) statusWritten() {
	if r.cfg.StatusWritten != nil {
		r.cfg.StatusWritten()
	}
}
