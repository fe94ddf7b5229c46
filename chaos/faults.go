package chaos

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/nats-io/nats.go"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/internal/failpoint"
)

// fault is one step of a run: it injects a fault, ends it, and returns
// when it ended (recovery is measured from then).
type fault struct {
	kind string // process, keyvault, nats, store, events
	name string
	run  func(ctx context.Context) (time.Time, error)
}

func createRSA() azkeys.CreateKeyParameters {
	return azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr(int32(2048))}
}

func zeroFaults() keyvault.Faults { return keyvault.Faults{} }

// throttled marks an outage of throttling in the truth: Key Vault answers
// 429 to most calls.
const throttled = "throttled"

// faults is every fault kind but the kills, for the run's backend.
func (r *runner) faults() []fault {
	fs := []fault{
		{"keyvault", "10% 5xx", r.vaultFaults(keyvault.Faults{ErrorRate: 0.1})},
		{"keyvault", "dropped connections (20%)", r.vaultFaults(keyvault.Faults{DropRate: 0.2})},
		{"keyvault", "latency spike (1.5 s ± 1 s)", r.vaultFaults(keyvault.Faults{Latency: 1500 * time.Millisecond, Jitter: time.Second})},
		{"keyvault", "429 storm with Retry-After", r.throttle(true)},
		{"keyvault", "429 storm without Retry-After", r.throttle(false)},
		{"keyvault", "vault unreachable shorter than the grace", r.unreachable(false)},
		{"keyvault", "vault unreachable longer than the grace", r.unreachable(true)},
		{"keyvault", "access revoked, then granted", r.revoke},
		{"keyvault", "key disabled mid-rewrap, then enabled", r.disableMidRewrap},
		{"keyvault", "key deleted mid-rewrap, then recovered", r.deleteMidRewrap},
		{"nats", "JetStream unavailable", r.natsOutage},
		{"nats", "nats-server restarted", r.natsRestart},
		{"nats", "a slow consumer", r.slowConsumer},
		{"store", "disk full", r.diskFull},
		{"events", "duplicated events", r.duplicates},
		{"events", "reordered events", r.reordered},
		{"events", "forged events", r.forged},
		{"events", "malformed events", r.malformedEvents},
		{"events", "an event flood", r.flood},
	}
	if r.c.pg != nil {
		fs = append(fs, fault{"store", "PostgreSQL restarted mid-rewrap", r.pgRestart})
	} else {
		fs = append(fs, fault{"store", "SQLite locked by another process", r.sqliteLocked})
	}
	return fs
}

// killFaults are the kills: one per named point, and at random instants.
func (r *runner) killFaults() []fault {
	var fs []fault
	for _, p := range failpoint.Points {
		fs = append(fs, fault{"process", "kill -9 at " + p, r.killAt(p)})
	}
	fs = append(fs, fault{"process", "kill -9 at a random instant of a rewrap", r.killRandom})
	return fs
}

// pick returns a random tenant's key.
func (r *runner) pickKey() tenant { return r.tenants[r.rng.IntN(len(r.tenants))] }

func (r *runner) keysOfVault(v int) []string {
	seen := map[string]bool{}
	var out []string
	for _, t := range r.tenants {
		if t.Vault == v && !seen[t.Key] {
			seen[t.Key] = true
			out = append(out, t.Key)
		}
	}
	return out
}

func (r *runner) allKeys() []string { return append(r.keysOfVault(0), r.keysOfVault(1)...) }

// rotate makes a new version of t's key: Key Vault's event starts a rewrap.
func (r *runner) rotate(ctx context.Context, t tenant) error {
	kc, err := r.c.azkeys(t.Vault)
	if err != nil {
		return err
	}
	resp, err := kc.RotateKey(ctx, t.Name, nil)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", t.Key, err)
	}
	r.hist.add("rotated "+t.Key+" to "+resp.Key.KID.Version(), t.Key)
	return nil
}

// rotateAny rotates a random key.
func (r *runner) rotateAny(ctx context.Context) error { return r.rotate(ctx, r.pickKey()) }

// sleep waits d, or less if ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// jitterIn is a seeded duration in [lo, hi).
func (r *runner) jitterIn(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.rng.Int64N(int64(hi-lo)))
}

// --- process -------------------------------------------------------------

// killAt arms every running replica to die at the point, makes work that
// reaches it, and waits for a hit; replicas still armed at the end are
// killed (a kill at a random instant) and started again unarmed.
func (r *runner) killAt(point string) func(context.Context) (time.Time, error) {
	return func(ctx context.Context) (time.Time, error) {
		n := 1
		switch point {
		case failpoint.RewrapDEK:
			n = 1 + r.rng.IntN(150)
		case failpoint.RewrapBatch:
			n = 1 + r.rng.IntN(2)
		}
		arm := fmt.Sprintf("%s=%d", point, n)
		for _, rep := range r.c.replicas {
			rep.stop()
			if err := rep.start(ctx, arm); err != nil {
				return time.Time{}, err
			}
		}
		r.hist.note("  armed %s on every replica", arm)
		t := r.pickKey()
		var healed time.Time
		if point == failpoint.SealTx {
			// Long enough for every armed replica to die in the seal in
			// turn, each costing a lease, and for a disarmed one to seal.
			r.disableFor(ctx, t, r.t.probe+r.t.hold+time.Duration(len(r.c.replicas))*r.killCost())
			healed = time.Now()
		} else {
			if err := r.rotate(ctx, t); err != nil {
				return time.Time{}, err
			}
			sleep(ctx, r.t.hold)
			healed = time.Now()
		}
		r.disarm(ctx)
		return healed, nil
	}
}

// disarm restarts, unarmed, every replica still armed: by kill -9, at
// whatever instant that is.
func (r *runner) disarm(ctx context.Context) {
	for _, rep := range r.c.replicas {
		rep.mu.Lock()
		armed := rep.armed != ""
		rep.mu.Unlock()
		if !armed || !rep.alive() {
			continue
		}
		rep.kill9()
		r.countKill("random")
		r.hist.add("killed " + rep.name + " (kill -9) to disarm it")
		_ = rep.start(ctx, "")
	}
}

// killRandom kills a random replica at a random instant after a rotation.
func (r *runner) killRandom(ctx context.Context) (time.Time, error) {
	if err := r.rotateAny(ctx); err != nil {
		return time.Time{}, err
	}
	sleep(ctx, r.jitterIn(0, 3*time.Second))
	rep := r.c.replicas[r.rng.IntN(len(r.c.replicas))]
	if rep.alive() {
		rep.kill9()
		r.countKill("random")
		r.hist.add("killed " + rep.name + " (kill -9) at a random instant")
	}
	healed := time.Now()
	return healed, rep.start(ctx, "")
}

// --- Key Vault -------------------------------------------------------------

func (r *runner) vaultFaults(f keyvault.Faults) func(context.Context) (time.Time, error) {
	return func(ctx context.Context) (time.Time, error) {
		for _, v := range r.c.vaults {
			v.SetFaults(f)
		}
		r.hist.add(fmt.Sprintf("key vault faults on: %+v", f))
		if err := r.rotate(ctx, r.pickKey()); err != nil {
			// The fault may refuse the rotation itself; Azure's would too.
			r.hist.note("  rotation under the fault failed (retried later): %v", err)
		}
		sleep(ctx, 2*r.t.hold)
		for _, v := range r.c.vaults {
			v.SetFaults(zeroFaults())
		}
		return time.Now(), nil
	}
}

func (r *runner) throttle(retryAfter bool) func(context.Context) (time.Time, error) {
	return func(ctx context.Context) (time.Time, error) {
		for _, v := range r.c.vaults {
			v.SetThrottle(20, time.Second, retryAfter)
		}
		// A storm longer than the grace may keep probes from getting an
		// answer for longer than it: sealing as unreachable is then true
		// (never required).
		r.truth.down(throttled, r.allKeys()...)
		defer r.truth.up(throttled, r.allKeys()...)
		if err := r.rotate(ctx, r.pickKey()); err != nil {
			r.hist.note("  rotation under the storm failed (retried later): %v", err)
		}
		sleep(ctx, 2*r.t.hold)
		for _, v := range r.c.vaults {
			v.SetThrottle(-1, 0, false)
		}
		return time.Now(), nil
	}
}

// unreachable drops every connection to one vault for longer than the
// grace plus a probe interval and a second (its tenants must seal) or for
// half the grace (they must not).
func (r *runner) unreachable(long bool) func(context.Context) (time.Time, error) {
	return func(ctx context.Context) (time.Time, error) {
		v := r.rng.IntN(len(r.c.vaults))
		d := r.t.grace / 2
		if long {
			d = r.t.grace + r.t.probe + 3*time.Second
		}
		keys := r.keysOfVault(v)
		r.c.vaults[v].SetFaults(keyvault.Faults{DropRate: 1})
		r.truth.down(cmkd.ReasonUnreachable, keys...)
		r.hist.add(fmt.Sprintf("vault %d unreachable for %s", v, d), keys...)
		sleep(ctx, d)
		r.c.vaults[v].SetFaults(zeroFaults())
		r.truth.up(cmkd.ReasonUnreachable, keys...)
		r.hist.add(fmt.Sprintf("vault %d reachable", v), keys...)
		return time.Now(), nil
	}
}

func (r *runner) revoke(ctx context.Context) (time.Time, error) {
	v := r.rng.IntN(len(r.c.vaults))
	keys := r.keysOfVault(v)
	r.c.vaults[v].Revoke()
	r.truth.down(cmkd.ReasonAccessDenied, keys...)
	r.hist.add(fmt.Sprintf("vault %d: access revoked", v), keys...)
	sleep(ctx, r.t.probe+r.t.hold)
	r.c.vaults[v].Grant()
	r.truth.up(cmkd.ReasonAccessDenied, keys...)
	r.hist.add(fmt.Sprintf("vault %d: access granted", v), keys...)
	return time.Now(), nil
}

// disableFor disables every version of t's key for d, then enables them.
func (r *runner) disableFor(ctx context.Context, t tenant, d time.Duration) {
	r.setKeyEnabled(ctx, t, false)
	sleep(ctx, d)
	r.setKeyEnabled(ctx, t, true)
}

// setKeyEnabled enables or disables every version of t's key: the key as
// a whole is then usable or not, whichever version DEKs are under.
func (r *runner) setKeyEnabled(ctx context.Context, t tenant, on bool) {
	kc, err := r.c.azkeys(t.Vault)
	if err != nil {
		r.hist.note("  azkeys: %v", err)
		return
	}
	if !on {
		r.truth.down(cmkd.ReasonDisabled, t.Key)
	}
	pager := kc.NewListKeyPropertiesVersionsPager(t.Name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			r.hist.note("  list versions of %s: %v", t.Key, err)
			break
		}
		for _, p := range page.Value {
			_, err := kc.UpdateKey(ctx, t.Name, p.KID.Version(), azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)}}, nil)
			if err != nil {
				r.hist.note("  update %s: %v", *p.KID, err)
			}
		}
	}
	if on {
		r.truth.up(cmkd.ReasonDisabled, t.Key)
	}
	r.hist.add(fmt.Sprintf("key %s enabled=%v (every version)", t.Key, on), t.Key)
}

func (r *runner) disableMidRewrap(ctx context.Context) (time.Time, error) {
	t := r.pickKey()
	if err := r.rotate(ctx, t); err != nil {
		return time.Time{}, err
	}
	sleep(ctx, r.jitterIn(100*time.Millisecond, time.Second))
	r.disableFor(ctx, t, r.t.probe+r.t.hold)
	return time.Now(), nil
}

func (r *runner) deleteMidRewrap(ctx context.Context) (time.Time, error) {
	t := r.pickKey()
	if err := r.rotate(ctx, t); err != nil {
		return time.Time{}, err
	}
	sleep(ctx, r.jitterIn(100*time.Millisecond, time.Second))
	kc, err := r.c.azkeys(t.Vault)
	if err != nil {
		return time.Time{}, err
	}
	if _, err := kc.DeleteKey(ctx, t.Name, nil); err != nil {
		return time.Time{}, fmt.Errorf("delete %s: %w", t.Key, err)
	}
	r.truth.down(cmkd.ReasonDeleted, t.Key)
	r.hist.add("deleted "+t.Key, t.Key)
	sleep(ctx, r.t.probe+r.t.hold)
	if _, err := kc.RecoverDeletedKey(ctx, t.Name, nil); err != nil {
		return time.Time{}, fmt.Errorf("recover %s: %w", t.Key, err)
	}
	r.truth.up(cmkd.ReasonDeleted, t.Key)
	r.hist.add("recovered "+t.Key, t.Key)
	return time.Now(), nil
}

// --- NATS ------------------------------------------------------------------

func (r *runner) natsOutage(ctx context.Context) (time.Time, error) {
	r.c.stopNATS()
	r.hist.add(fmt.Sprintf("nats-server down for %s", r.t.natsOutage))
	// Work goes on meanwhile: a rotation, and a key disabled long enough
	// to seal; their status events wait in the outbox.
	if err := r.rotateAny(ctx); err != nil {
		return time.Time{}, err
	}
	r.disableFor(ctx, r.pickKey(), r.t.probe+r.t.hold)
	sleep(ctx, r.t.natsOutage-r.t.probe-r.t.hold)
	if err := r.c.startNATS(); err != nil {
		return time.Time{}, err
	}
	r.hist.add("nats-server up")
	return time.Now(), nil
}

func (r *runner) natsRestart(ctx context.Context) (time.Time, error) {
	if err := r.rotateAny(ctx); err != nil {
		return time.Time{}, err
	}
	sleep(ctx, r.jitterIn(0, time.Second))
	r.c.stopNATS()
	if err := r.c.startNATS(); err != nil {
		return time.Time{}, err
	}
	r.hist.add("nats-server restarted")
	return time.Now(), nil
}

// slowConsumer subscribes to everything cmkd says and reads it slowly, so
// that the server cuts it off as a slow consumer; cmkd must not notice.
func (r *runner) slowConsumer(ctx context.Context) (time.Time, error) {
	// Its own slow-consumer errors are the point, not news.
	nc, err := nats.Connect(r.c.natsURL(), nats.NoReconnect(), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		return time.Time{}, err
	}
	defer nc.Close()
	sub, err := nc.Subscribe("cmkd.>", func(*nats.Msg) { time.Sleep(200 * time.Millisecond) })
	if err != nil {
		return time.Time{}, err
	}
	if err := sub.SetPendingLimits(4, 4<<10); err != nil {
		return time.Time{}, err
	}
	if err := r.rotateAny(ctx); err != nil {
		return time.Time{}, err
	}
	r.disableFor(ctx, r.pickKey(), r.t.probe+r.t.hold)
	dropped, _ := sub.Dropped()
	r.hist.add(fmt.Sprintf("slow consumer dropped %d messages", dropped))
	return time.Now(), nil
}

// --- store -----------------------------------------------------------------

func (r *runner) pgRestart(ctx context.Context) (time.Time, error) {
	if err := r.rotateAny(ctx); err != nil {
		return time.Time{}, err
	}
	sleep(ctx, r.jitterIn(200*time.Millisecond, 1500*time.Millisecond))
	if err := r.c.pg.Stop(ctx); err != nil {
		return time.Time{}, err
	}
	r.hist.add("PostgreSQL stopped (immediate: as a crash)")
	sleep(ctx, r.jitterIn(time.Second, r.t.hold))
	if err := r.c.pg.Start(ctx); err != nil {
		return time.Time{}, err
	}
	r.hist.add("PostgreSQL started")
	return time.Now(), nil
}

// sqliteLocked holds SQLite's write lock from another process's
// connection (the harness's) while a rewrap runs.
func (r *runner) sqliteLocked(ctx context.Context) (time.Time, error) {
	db, err := sql.Open("sqlite", "file:"+r.c.sqlitePath+"?_pragma=busy_timeout(10000)")
	if err != nil {
		return time.Time{}, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close()
	if err := r.rotateAny(ctx); err != nil {
		return time.Time{}, err
	}
	sleep(ctx, r.jitterIn(200*time.Millisecond, time.Second))
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		return time.Time{}, fmt.Errorf("lock the database: %w", err)
	}
	r.hist.add("SQLite locked (BEGIN EXCLUSIVE) by the harness")
	sleep(ctx, r.t.hold)
	if _, err := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
		return time.Time{}, err
	}
	r.hist.add("SQLite unlocked")
	return time.Now(), nil
}

// diskFull fills the store's file system while work runs, then frees it.
// Where no small file system can be mounted, each replica's file size
// limit plays it.
func (r *runner) diskFull(ctx context.Context) (time.Time, error) {
	if err := r.rotateAny(ctx); err != nil {
		return time.Time{}, err
	}
	if r.c.disk != nil {
		if err := r.c.disk.Fill(); err != nil {
			return time.Time{}, fmt.Errorf("fill the disk: %w", err)
		}
	} else {
		for _, rep := range r.c.replicas {
			if err := LimitFileSize(rep.pid(), 0); err != nil {
				return time.Time{}, err
			}
		}
	}
	r.hist.add("the store's disk is full")
	sleep(ctx, r.t.hold)
	if r.c.disk != nil {
		if err := r.c.disk.Free(); err != nil {
			return time.Time{}, err
		}
	} else {
		for _, rep := range r.c.replicas {
			_ = LimitFileSize(rep.pid(), -1)
		}
	}
	r.hist.add("the store's disk has space again")
	if r.c.pg != nil && !r.c.pg.Running(ctx) {
		// PostgreSQL stops when it cannot write its WAL; an operator
		// frees space and starts it.
		r.hist.note("  PostgreSQL stopped on the full disk; starting it again")
		if err := r.c.pg.Start(ctx); err != nil {
			return time.Time{}, err
		}
	}
	return time.Now(), nil
}

var errNoEvents = errors.New("no key vault event to replay yet")
