package status_test

import (
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/store"
)

func ExampleEncode() {
	ev := store.StatusEvent{ID: "01J9", Kind: store.KindSealed, Tenant: "acme",
		Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Data: map[string]any{"reason": "key disabled"}}
	body, _ := status.Encode("cmkd-0", ev)
	fmt.Println(status.Subject(ev.Tenant, ev.Kind))
	fmt.Println(string(body))
	// Output:
	// cmkd.status.acme.sealed
	// {"specversion":"1.0","id":"01J9","source":"cmkd/cmkd-0","type":"io.cmkd.sealed","subject":"acme","time":"2026-03-01T12:00:00Z","datacontenttype":"application/json","data":{"reason":"key disabled"}}
}
