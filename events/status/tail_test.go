package status_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/store"
)

func TestTailFiltersByTenantAndStops(t *testing.T) {
	ns := startNATS(t, -1, t.TempDir())
	defer ns.Shutdown()
	js := jsFor(t, ns.ClientURL())
	st := openStore(t, filepath.Join(t.TempDir(), "db"))
	for i, tenant := range []string{"acme", "globex", "acme"} {
		ev := store.StatusEvent{ID: "e" + string(rune('0'+i)), Kind: store.KindSealed, Tenant: tenant, Data: map[string]any{}}
		if err := st.Publish(t.Context(), ev); err != nil {
			t.Fatal(err)
		}
	}
	runRelay(t, st, js, "r1")
	waitFor(t, js, 3)

	var acme []string
	err := status.Tail(t.Context(), js, status.TailOptions{Tenant: "acme", Since: time.Hour}, func(e status.Event) error {
		acme = append(acme, e.ID)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(acme) != 2 || acme[0] != "e0" || acme[1] != "e2" {
		t.Fatalf("tail --tenant acme read %v, want [e0 e2] in order", acme)
	}
}
