package chaos

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd/emulator/eventgrid"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/events/natsq"
)

// malformedSent is what the malformed-events fault sent, to be found
// dead-lettered: queue bodies by digest, Event Grid events by id.
type malformedSent struct {
	queue map[string]string // sha256 hex → a description
	grid  map[string]string // event id → a description
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// publish sends evs to Event Grid and, as the webhook in queue mode
// would, to the CMKD_EVENTS queue.
func (r *runner) publish(ctx context.Context, evs []eventgrid.CloudEvent, toGrid, toQueue bool) error {
	for _, e := range evs {
		if toGrid {
			if err := r.c.eg.Publish(topic, e); err != nil {
				return fmt.Errorf("publish to event grid: %w", err)
			}
		}
		if toQueue {
			body, err := json.Marshal(e)
			if err != nil {
				return err
			}
			if err := r.enqueue(ctx, body); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *runner) enqueue(ctx context.Context, body []byte) error {
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := natsq.Enqueue(qctx, r.c.js, "", body); err != nil {
		return fmt.Errorf("enqueue: %w", err)
	}
	return nil
}

// recent is up to n of Key Vault's latest events.
func (r *runner) recent(n int) ([]eventgrid.CloudEvent, error) {
	all := r.c.kvEv.all()
	if len(all) == 0 {
		return nil, errNoEvents
	}
	return all[max(0, len(all)-n):], nil
}

func (r *runner) duplicates(ctx context.Context) (time.Time, error) {
	if err := r.rotateAny(ctx); err != nil {
		return time.Time{}, err
	}
	evs, err := r.recent(5)
	if err != nil {
		return time.Time{}, err
	}
	for range 3 {
		if err := r.publish(ctx, evs, true, true); err != nil {
			return time.Time{}, err
		}
	}
	r.hist.add(fmt.Sprintf("sent %d key vault events three times more", len(evs)))
	return time.Now(), nil
}

func (r *runner) reordered(ctx context.Context) (time.Time, error) {
	t := r.pickKey()
	for range 2 {
		if err := r.rotate(ctx, t); err != nil {
			return time.Time{}, err
		}
	}
	evs, err := r.recent(6)
	if err != nil {
		return time.Time{}, err
	}
	rev := make([]eventgrid.CloudEvent, 0, len(evs))
	for i := len(evs) - 1; i >= 0; i-- {
		e := evs[i]
		e.ID = randomHex(16) // new deliveries of old facts, newest first
		rev = append(rev, e)
	}
	if err := r.publish(ctx, rev, true, true); err != nil {
		return time.Time{}, err
	}
	r.hist.add(fmt.Sprintf("sent %d key vault events again, newest first", len(rev)))
	return time.Now(), nil
}

// kvEvent is a KeyNewVersionCreated event as Key Vault sends it.
func kvEvent(vaultURL, vaultName, key, version string) eventgrid.CloudEvent {
	data, _ := json.Marshal(map[string]any{
		"Id": vaultURL + "/keys/" + key + "/" + version, "VaultName": vaultName, "ObjectType": "Key",
		"ObjectName": key, "Version": version,
	})
	return eventgrid.CloudEvent{SpecVersion: "1.0", ID: randomHex(16), Type: keyvault.EventKeyNewVersionCreated,
		Source:  "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/chaos/providers/Microsoft.KeyVault/vaults/" + vaultName,
		Subject: key, Time: time.Now().UTC(), DataContentType: "application/json", Data: data}
}

// forged sends events Key Vault never sent: new versions that do not
// exist, keys nobody uses, a vault outside the policy. A forged event may
// cause a probe, never a seal or a rewrap.
func (r *runner) forged(ctx context.Context) (time.Time, error) {
	var evs []eventgrid.CloudEvent
	for v, kv := range r.c.vaults {
		name := fmt.Sprintf("chaos%d", v)
		evs = append(evs,
			kvEvent(kv.URL(), name, fmt.Sprintf("k%d", 2*v), randomHex(16)),
			kvEvent(kv.URL(), name, "nobody-uses-this", randomHex(16)))
	}
	evs = append(evs, kvEvent("https://attacker.vault.azure.net", "attacker", "k0", randomHex(16)))
	if err := r.publish(ctx, evs, true, true); err != nil {
		return time.Time{}, err
	}
	r.hist.add(fmt.Sprintf("sent %d forged events", len(evs)))
	sleep(ctx, r.t.probe)
	return time.Now(), nil
}

// malformedEvents sends what no decoder can read; all of it must end
// dead-lettered with a reason, and nothing else may happen.
func (r *runner) malformedEvents(ctx context.Context) (time.Time, error) {
	if r.malformed.queue == nil {
		r.malformed = malformedSent{queue: map[string]string{}, grid: map[string]string{}}
	}
	nonce := randomHex(8)
	bodies := map[string][]byte{
		"not JSON":               []byte("this is not json " + nonce),
		"truncated JSON":         []byte(`{"specversion":"1.0","id":"` + nonce + `","type":`),
		"a JSON number":          []byte("4" + fmt.Sprint(len(nonce))),
		"binary":                 append([]byte{0, 1, 2, 0xff, 0xfe}, nonce...),
		"data not an object":     mustJSON(eventgrid.CloudEvent{SpecVersion: "1.0", ID: "mal-" + nonce + "-1", Source: "/x", Type: keyvault.EventKeyNewVersionCreated, Data: json.RawMessage(`"garbage"`)}),
		"data without a key URL": mustJSON(eventgrid.CloudEvent{SpecVersion: "1.0", ID: "mal-" + nonce + "-2", Source: "/x", Type: keyvault.EventKeyNewVersionCreated, Data: json.RawMessage(`{"Id": 5}`)}),
	}
	for desc, b := range bodies {
		sum := sha256.Sum256(b)
		r.malformed.queue[hex.EncodeToString(sum[:])] = desc
		if err := r.enqueue(ctx, b); err != nil {
			return time.Time{}, err
		}
	}
	grid := []eventgrid.CloudEvent{
		{SpecVersion: "1.0", ID: "mal-" + nonce + "-g1", Source: "/x", Type: keyvault.EventKeyNewVersionCreated, Data: json.RawMessage(`"garbage"`)},
		{SpecVersion: "1.0", ID: "mal-" + nonce + "-g2", Source: "/x", Type: keyvault.EventKeyNewVersionCreated, Data: json.RawMessage(`{"Id": "not a key url"}`)},
	}
	for _, e := range grid {
		r.malformed.grid[e.ID] = string(e.Data)
	}
	if err := r.publish(ctx, grid, true, false); err != nil {
		return time.Time{}, err
	}
	r.hist.add(fmt.Sprintf("sent %d malformed events to the queue, %d to event grid", len(bodies), len(grid)))
	sleep(ctx, r.t.probe)
	return time.Now(), nil
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// flood sends floodEvents copies of real events at once, most to the
// queue, the rest to Event Grid.
func (r *runner) flood(ctx context.Context) (time.Time, error) {
	if err := r.rotateAny(ctx); err != nil {
		return time.Time{}, err
	}
	evs, err := r.recent(8)
	if err != nil {
		return time.Time{}, err
	}
	start := time.Now()
	for i := range r.t.floodEvents {
		e := evs[i%len(evs)]
		e.ID = randomHex(16)
		if err := r.publish(ctx, []eventgrid.CloudEvent{e}, i%5 == 0, i%5 != 0); err != nil {
			return time.Time{}, err
		}
	}
	r.hist.add(fmt.Sprintf("flooded %d events in %s", r.t.floodEvents, time.Since(start).Round(time.Millisecond)))
	return time.Now(), nil
}
