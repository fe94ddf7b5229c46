package chaos

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/events/natsq"
	"github.com/cmkd-io/cmkd/events/status"
	"github.com/cmkd-io/cmkd/store"
)

// check checks every invariant on the healed cluster.
func (r *runner) check(ctx context.Context) error {
	r.hist.note("checking the invariants")
	f := &r.res.Figures
	f.Puts, f.PutErrors = int(r.wl.puts.Load()), int(r.wl.putErrs.Load())
	f.Gets, f.GetsSealed, f.GetErrors = int(r.wl.gets.Load()), int(r.wl.getSealed.Load()), int(r.wl.getErrs.Load())
	f.BadReads = int(r.wl.bad.Load())
	for _, id := range r.wl.badReads {
		r.violate("records", "a read returned a value never written: "+id, []string{id}, time.Time{})
	}
	if err := r.checkRecords(ctx); err != nil {
		return err
	}
	deks, err := r.checkDEKs(ctx)
	if err != nil {
		return err
	}
	rows, err := r.c.outbox(ctx)
	if err != nil {
		return fmt.Errorf("read the outbox: %w", err)
	}
	bodies, err := r.checkStatus(ctx, rows)
	if err != nil {
		return err
	}
	r.checkSeals(rows)
	if err := r.checkDeadLetters(ctx); err != nil {
		return err
	}
	if err := r.checkLeaks(deks, bodies); err != nil {
		return err
	}
	if n := r.c.slowStops.Load(); n > 0 {
		r.violate("exits", fmt.Sprintf("%d times a replica did not stop within 20 s of SIGTERM (its goroutines are in its log)", n), nil, time.Time{})
	}
	f.UnexpectedExits = int(r.c.exits.Load())
	if f.UnexpectedExits > 0 {
		r.violate("exits", fmt.Sprintf("%d replica exits nobody caused", f.UnexpectedExits), nil, time.Time{})
	}
	return nil
}

// checkRecords reads every acknowledged record through a store with a
// cold cache: each DEK is unwrapped in Key Vault again.
func (r *runner) checkRecords(ctx context.Context) error {
	st, err := r.c.openStore(ctx, 0)
	if err != nil {
		return err
	}
	defer st.Close()
	acked := r.wl.ledger.snapshot()
	r.res.Figures.RecordsAcknowledged = len(acked)
	ids := make([]recordID, 0, len(acked))
	for id := range acked {
		ids = append(ids, id)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	work := make(chan recordID)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range work {
				got, err := st.Get(ctx, id.Tenant, id.Key)
				if _, ok := r.wl.ledger.allowed(id, got); err == nil && ok {
					continue
				}
				mu.Lock()
				r.res.Figures.RecordsLost++
				mu.Unlock()
				what := "reads a different value"
				if err != nil {
					what = "does not read: " + short(err)
				}
				r.violate("records", fmt.Sprintf("acknowledged record %s %s", id, what), []string{id.String(), id.Tenant}, time.Time{})
			}
		}()
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return nil
}

// checkDEKs unwraps every DEK with the real azkeys client, under the
// version its current wrapping names, and compares its key check value.
// It returns the plaintexts, for the leak check (they stay in memory).
func (r *runner) checkDEKs(ctx context.Context) ([][]byte, error) {
	st, err := r.c.openStore(ctx, 0)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	clients := map[string]*azkeys.Client{}
	for v, kv := range r.c.vaults {
		kc, err := r.c.azkeys(v)
		if err != nil {
			return nil, err
		}
		clients[kv.URL()] = kc
	}
	var plain [][]byte
	for _, key := range r.allKeys() {
		kid, err := cmkd.ParseKeyID(key)
		if err != nil {
			return nil, err
		}
		after := ""
		for {
			deks, err := st.ListDEKsNotAt(ctx, kid, "", after, 500)
			if err != nil {
				return nil, fmt.Errorf("list DEKs of %s: %w", key, err)
			}
			if len(deks) == 0 {
				break
			}
			after = deks[len(deks)-1].ID
			for _, d := range deks {
				r.res.Figures.DEKs++
				p, err := unwrap(ctx, clients[d.Current.KID.Vault], d)
				if err != nil {
					r.res.Figures.DEKsLost++
					r.violate("deks", fmt.Sprintf("DEK %s of %s: %v", d.ID, d.Tenant, err), []string{d.Tenant, key}, time.Time{})
					continue
				}
				plain = append(plain, p)
			}
		}
	}
	return plain, nil
}

func unwrap(ctx context.Context, kc *azkeys.Client, d store.DEK) ([]byte, error) {
	if kc == nil {
		return nil, fmt.Errorf("wrapped under %s, a vault the run does not have", d.Current.KID)
	}
	resp, err := kc.UnwrapKey(ctx, d.Current.KID.Name, d.Current.KID.Version, azkeys.KeyOperationParameters{
		Algorithm: to.Ptr(azkeys.EncryptionAlgorithm(d.Current.Alg)), Value: d.Current.Value}, nil)
	if err != nil {
		return nil, fmt.Errorf("unwrap under %s: %w", d.Current.KID, err)
	}
	if !bytes.Equal(store.KeyCheckValue(resp.Result), d.KCV) {
		return nil, fmt.Errorf("unwrapped under %s to bytes that fail the key check value", d.Current.KID)
	}
	return resp.Result, nil
}

// checkStatus reads CMKD_STATUS whole and holds it against the outbox:
// every event once, each tenant's in write order. It returns the bodies
// for the leak check.
func (r *runner) checkStatus(ctx context.Context, rows []outboxRow) ([][]byte, error) {
	msgs, err := readStream(ctx, r.c.js, status.DefaultStream)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", status.DefaultStream, err)
	}
	f := &r.res.Figures
	f.StatusRecorded = len(rows)
	seqOf := make(map[string]int64, len(rows))
	timeOf := map[string]time.Time{}
	for _, row := range rows {
		seqOf[row.Event.ID] = row.Seq
		timeOf[row.Event.ID] = row.Event.Time
	}
	seen := map[string]int{}
	lastSeq := map[string]int64{} // tenant → the outbox seq of its last event on the stream
	var bodies [][]byte
	for _, m := range msgs {
		bodies = append(bodies, m.Data())
		ev, err := cmkd.ParseStatusEvent(m.Data())
		if err != nil {
			r.violate("status", "a message on the stream is not a status event: "+err.Error(), nil, time.Time{})
			continue
		}
		seen[ev.ID]++
		if seen[ev.ID] == 2 {
			f.StatusDoubled++
			r.violate("status", fmt.Sprintf("status event %s (%s %s) published twice", ev.ID, ev.Tenant, ev.Kind), []string{ev.Tenant}, time.Time{})
		}
		seq, ok := seqOf[ev.ID]
		if !ok {
			r.violate("status", fmt.Sprintf("status event %s (%s %s) on the stream but not in the outbox", ev.ID, ev.Tenant, ev.Kind), []string{ev.Tenant}, time.Time{})
			continue
		}
		if seq < lastSeq[ev.Tenant] && seen[ev.ID] == 1 {
			f.StatusOutOfOrder++
			r.violate("status", fmt.Sprintf("tenant %s: status event %s (%s, outbox #%d) published after outbox #%d", ev.Tenant, ev.ID, ev.Kind, seq, lastSeq[ev.Tenant]), []string{ev.Tenant}, timeOf[ev.ID].Add(-30*time.Second))
		}
		lastSeq[ev.Tenant] = max(lastSeq[ev.Tenant], seq)
	}
	for _, row := range rows {
		if seen[row.Event.ID] > 0 {
			f.StatusPublished++
			continue
		}
		f.StatusLost++
		r.violate("status", fmt.Sprintf("status event %s (%s %s, outbox #%d, sent=%v) never reached the stream", row.Event.ID, row.Event.Tenant, row.Event.Kind, row.Seq, row.Sent), []string{row.Event.Tenant}, row.Event.Time.Add(-30*time.Second))
	}
	return bodies, nil
}

// readStream reads every message of a stream, oldest first.
func readStream(ctx context.Context, js jetstream.JetStream, name string) ([]jetstream.Msg, error) {
	s, err := js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	info, err := s.Info(ctx)
	if err != nil {
		return nil, err
	}
	want := int(info.State.Msgs)
	if want == 0 {
		return nil, nil
	}
	cons, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return nil, err
	}
	var out []jetstream.Msg
	for len(out) < want {
		batch, err := cons.Fetch(min(want-len(out), 500), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, err
		}
		n := 0
		for m := range batch.Messages() {
			out = append(out, m)
			n++
		}
		if n == 0 {
			return out, fmt.Errorf("read %d of %d messages", len(out), want)
		}
	}
	return out, nil
}

// sealSlack is how far a seal may follow the end of its outage: the
// probe that found the key unusable started before the key came back.
func (r *runner) sealSlack() time.Duration { return r.t.probe + 3*time.Second }

// change is a tenant sealed or unsealed, as the outbox recorded it.
type change struct {
	at     time.Time
	sealed bool
	reason string
}

// checkSeals holds every seal the outbox recorded against the outages
// the harness caused: none without one (false), and for every outage
// longer than a probe interval and a second, every tenant of its key
// sealed (else missed).
func (r *runner) checkSeals(rows []outboxRow) {
	byTenant := map[string][]change{}
	keyOf := map[string]string{}
	for _, t := range r.tenants {
		keyOf[t.ID] = t.Key
	}
	outages := r.truth.all()
	f := &r.res.Figures
	for _, row := range rows {
		ev := row.Event
		switch ev.Kind {
		case cmkd.KindSealed:
			f.Seals++
			byTenant[ev.Tenant] = append(byTenant[ev.Tenant], change{ev.Time, true, ev.Reason})
			if !r.sealIsTrue(outages, keyOf[ev.Tenant], ev) {
				f.FalseSeals++
				r.violate("seals", fmt.Sprintf("tenant %s sealed (%s) at %s while its key was usable", ev.Tenant, ev.Reason, r.rel(ev.Time)),
					[]string{ev.Tenant, keyOf[ev.Tenant]}, ev.Time.Add(-time.Minute))
			}
		case cmkd.KindUnsealed:
			byTenant[ev.Tenant] = append(byTenant[ev.Tenant], change{ev.Time, false, ""})
		}
	}
	for _, o := range outages {
		if o.Reason != throttled { // a storm may seal, never must
			r.judgeOutage(o, byTenant)
		}
	}
}

// judgeOutage checks that every tenant of o's key sealed in time: within
// the probe interval + 1 s of the key becoming unusable — for unreachable,
// of the grace's end — plus a lease's TTL + 1 s for each replica killed
// meanwhile.
func (r *runner) judgeOutage(o outage, byTenant map[string][]change) {
	f := &r.res.Figures
	from := o.From // what time to seal is measured from
	if o.Reason == cmkd.ReasonUnreachable {
		from = o.From.Add(r.t.grace)
	}
	end := o.until(time.Now())
	kills := r.killsBetween(o.From, end)
	deadline := from.Add(r.t.probe + time.Second + time.Duration(kills)*r.killCost())
	if end.Before(deadline) {
		return // shorter than the promise: nothing to judge
	}
	if kills > 0 {
		f.SealsAfterKills++
	}
	for _, t := range r.tenants {
		if t.Key != o.Key {
			continue
		}
		sealedBefore, sealedAt := false, time.Time{}
		for _, c := range byTenant[t.ID] {
			if c.at.Before(o.From) {
				sealedBefore = c.sealed
				continue
			}
			if c.sealed {
				sealedAt = c.at
				break
			}
		}
		took := sealedAt.Sub(from)
		switch {
		case sealedBefore: // sealed for an earlier cause, and still
		case sealedAt.IsZero() || sealedAt.After(deadline):
			f.MissedSeals++
			what := "not sealed"
			if !sealedAt.IsZero() {
				what = fmt.Sprintf("sealed only %s after", took.Round(time.Millisecond))
			}
			r.violate("seals", fmt.Sprintf("tenant %s %s its key became unusable (%s, for %s from %s; %d kills meanwhile)",
				t.ID, what, o.Reason, end.Sub(o.From).Round(time.Millisecond), r.rel(o.From), kills), []string{t.ID, t.Key}, o.From.Add(-5*time.Second))
		case kills > 0:
			f.MaxTimeToSealAfterKills = max(f.MaxTimeToSealAfterKills, took)
		default:
			f.MaxTimeToSeal = max(f.MaxTimeToSeal, took)
		}
	}
}

// killCost is how much later a seal may come for each replica killed
// while its key is unusable: the dead holder's lease runs out, and a
// replica (another, or the restarted one) takes the key over.
func (r *runner) killCost() time.Duration { return r.t.lease + time.Second }

func (r *runner) killsBetween(from, to time.Time) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, at := range r.killedAt {
		if !at.Before(from) && !at.After(to) {
			n++
		}
	}
	return n
}

// sealIsTrue reports whether a seal at ev.Time for ev.Reason matches an
// outage of key.
func (r *runner) sealIsTrue(outages []outage, key string, ev cmkd.StatusEvent) bool {
	for _, o := range outages {
		if o.Key != key || !reasonMatches(o.Reason, ev.Reason) {
			continue
		}
		from := o.From.Add(-500 * time.Millisecond)
		if o.Reason == cmkd.ReasonUnreachable || o.Reason == throttled {
			// Unreachable seals only past the grace, which counts from
			// Key Vault's last answer: up to an interval and a check
			// before the vault went away, and a kill's worth more when
			// a replica had just restarted and not probed yet.
			lead := r.t.probe + time.Second + time.Duration(r.killsBetween(o.From.Add(-r.killCost()), o.From))*r.killCost()
			from = o.From.Add(r.t.grace - lead)
		}
		if ev.Time.After(from) && ev.Time.Before(o.until(time.Now()).Add(r.sealSlack())) {
			return true
		}
	}
	return false
}

// reasonMatches: an outage the harness caused, and the seal reasons that
// report it truly. A key deleted is also a key Key Vault answers 404 for,
// and a version disabled is what a disabled key is.
func reasonMatches(outage, reason string) bool {
	switch outage {
	case cmkd.ReasonDeleted:
		return reason == cmkd.ReasonDeleted || reason == cmkd.ReasonPurged
	case throttled:
		return reason == cmkd.ReasonUnreachable
	default:
		return outage == reason
	}
}

func (r *runner) rel(t time.Time) string {
	return fmt.Sprintf("%.3fs", t.Sub(r.hist.start).Seconds())
}

// checkDeadLetters finds every malformed event sent dead-lettered with a
// reason, and no valid event dead-lettered.
func (r *runner) checkDeadLetters(ctx context.Context) error {
	f := &r.res.Figures
	f.MalformedSent = len(r.malformed.queue) + len(r.malformed.grid)
	msgs, err := readStream(ctx, r.c.js, natsq.DefaultDLQStream)
	if err != nil {
		return fmt.Errorf("read %s: %w", natsq.DefaultDLQStream, err)
	}
	found := map[string]bool{}
	for _, m := range msgs {
		sum := m.Headers().Get(natsq.HeaderBodySHA256)
		if _, ok := r.malformed.queue[sum]; !ok {
			r.violate("events", fmt.Sprintf("a valid event was dead-lettered from the queue (%s)", m.Headers().Get(natsq.HeaderReason)), nil, time.Time{})
			continue
		}
		if m.Headers().Get(natsq.HeaderReason) == "" {
			r.violate("events", "a dead letter without a reason: "+r.malformed.queue[sum], nil, time.Time{})
			continue
		}
		found[sum] = true
	}
	for _, dl := range r.c.eg.DeadLetters(topic, subscription) {
		if _, ok := r.malformed.grid[dl.Event.ID]; !ok {
			r.violate("events", fmt.Sprintf("a valid event was dead-lettered by event grid: %s %s (%s)", dl.Event.Type, dl.Event.ID, dl.Reason), nil, time.Time{})
			continue
		}
		if dl.Reason == "" {
			r.violate("events", "an event grid dead letter without a reason", nil, time.Time{})
			continue
		}
		found[dl.Event.ID] = true
	}
	f.DeadLettered = len(found)
	for sum, desc := range r.malformed.queue {
		if !found[sum] {
			f.MalformedNotDead++
			r.violate("events", "a malformed queue message was not dead-lettered: "+desc, nil, time.Time{})
		}
	}
	for id, desc := range r.malformed.grid {
		if !found[id] {
			f.MalformedNotDead++
			r.violate("events", fmt.Sprintf("a malformed event grid event was not dead-lettered: %s (%s)", id, desc), nil, time.Time{})
		}
	}
	return nil
}

// checkLeaks looks for every DEK's plaintext, raw or encoded, in every
// file the run wrote (stores, logs, NATS's storage) and in every status
// event.
func (r *runner) checkLeaks(deks [][]byte, bodies [][]byte) error {
	s := newSecretScanner(deks)
	hits, err := s.scanDir(r.cfg.Dir)
	if err != nil {
		return err
	}
	for i, b := range bodies {
		if s.scan(b) {
			hits = append(hits, fmt.Sprintf("status event #%d", i+1))
		}
	}
	sort.Strings(hits)
	r.res.Figures.PlaintextLeaks = len(hits)
	if len(hits) > 0 {
		r.violate("secrets", "a plaintext DEK in: "+strings.Join(hits, ", "), nil, time.Now())
	}
	return nil
}
