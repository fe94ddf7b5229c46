package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/worker"
)

func runRewrap(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("rewrap", "rewrap --key KEY_URL | --tenant ID [--dry-run]", stderr)
	c.register(fs)
	keyFlag := fs.String("key", "", "key URL whose DEKs to bring to its newest usable version")
	tenant := fs.String("tenant", "", "the tenant whose key to rewrap (all tenants on that key move with it)")
	dry := fs.Bool("dry-run", false, "print DEKs per version and what would move; change nothing")
	if err := parse(fs, argv); err != nil {
		return err
	}
	if err := args(fs, 0, "no arguments"); err != nil {
		return err
	}
	if (*keyFlag == "") == (*tenant == "") {
		return usagef("rewrap: give exactly one of --key and --tenant")
	}
	var key cmkd.KeyID
	if *keyFlag != "" {
		k, err := cmkd.ParseKeyID(*keyFlag)
		if err != nil {
			return fmt.Errorf("rewrap --key: %w", err)
		}
		key = k.Versionless()
	}
	d, err := c.open(ctx, stderr, !*dry)
	if err != nil {
		return err
	}
	defer d.Close()
	if *tenant != "" {
		t, err := d.store.Tenant(ctx, *tenant)
		if err != nil {
			return err
		}
		key = t.Key
	}
	if *dry {
		return rewrapPlan(ctx, d, &c, key, stdout)
	}
	return rewrapNow(ctx, d, &c, key, stdout, stderr)
}

type plan struct {
	Key     cmkd.KeyID     `json:"key"`
	Target  string         `json:"target_version"`
	ByVer   map[string]int `json:"deks_by_version"`
	ToMove  int            `json:"deks_to_move"`
	Tenants []string       `json:"tenants"`
}

// rewrapPlan reads the key's newest version and the store's DEKs per
// version; it changes nothing. The target is kek.WrapTarget's, the same
// decision the worker's rewrap makes.
func rewrapPlan(ctx context.Context, d *deps, c *common, key cmkd.KeyID, stdout io.Writer) error {
	st, err := d.kek.Probe(ctx, key)
	if err != nil {
		return err
	}
	p := plan{Key: key}
	if p.Target, err = d.kek.WrapTarget(ctx, st); err != nil {
		return err
	}
	if p.ByVer, err = d.store.VersionCounts(ctx, key); err != nil {
		return err
	}
	for v, n := range p.ByVer {
		if v != p.Target && p.Target != "" {
			p.ToMove += n
		}
	}
	ts, err := d.store.TenantsByKey(ctx, key)
	if err != nil {
		return err
	}
	for _, t := range ts {
		p.Tenants = append(p.Tenants, t.ID)
	}
	return c.emit(stdout, p, func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "key %s (latest version %s, %s; DEKs go to %s)\n", key, st.Key.Version, st.Outcome, dash(p.Target))
		vs := make([]string, 0, len(p.ByVer))
		for v := range p.ByVer {
			vs = append(vs, v)
		}
		sort.Strings(vs)
		for _, v := range vs {
			mark := "would move"
			if v == p.Target || p.Target == "" {
				mark = "stays"
			}
			fmt.Fprintf(&b, "  %s  %6d DEKs  %s\n", v, p.ByVer[v], mark)
		}
		fmt.Fprintf(&b, "%d DEKs of %d tenant(s) would be re-wrapped; nothing was changed (dry run)\n", p.ToMove, len(p.Tenants))
		return b.String()
	})
}

// rewrapNow reconciles the key at once, under its lease, as the worker
// would; other replicas keep off the key meanwhile.
func rewrapNow(ctx context.Context, d *deps, c *common, key cmkd.KeyID, stdout, stderr io.Writer) error {
	rec, err := handlers.New(handlers.Config{
		Store: d.store, KEK: d.kek, Broadcast: worker.Broadcaster(d.nc, d.log),
		RewrapConcurrency: d.cfg.Worker.RewrapConcurrency, SampleRate: d.cfg.Worker.SampleRate,
		UnreachableGrace: d.cfg.Worker.UnreachableGrace, SealOnExpiry: d.cfg.Worker.SealOnExpiry,
		Instance: d.cfg.Instance + "-cli", Logger: d.log,
	})
	if err != nil {
		return err
	}
	w, err := worker.New(worker.Config{
		Store: d.store, Reconciler: rec, Limits: d.kek, Instance: d.cfg.Instance + "-cli",
		ProbeInterval: d.cfg.Worker.ProbeInterval, Logger: d.log,
	})
	if err != nil {
		return err
	}
	start := time.Now()
	res, err := w.RewrapKey(ctx, handlers.Request{Key: key, Cause: "cli", Progress: progressTo(stderr, c.json, stdout)})
	if errors.Is(err, worker.ErrBusy) {
		return fmt.Errorf("rewrap %s: %w; it is being brought up to date already, try again in a minute", key, err)
	}
	if err != nil {
		return fmt.Errorf("rewrap %s: %w (run it again: it resumes where it stopped)", key, err)
	}
	summary := map[string]any{"key": key, "outcome": res.Outcome, "version": res.Version, "reason": res.Reason,
		"duration_ms": time.Since(start).Milliseconds()}
	if res.Rewrap != nil {
		summary["deks_total"], summary["deks_rewrapped"], summary["sampled"] = res.Rewrap.Total, res.Rewrap.Rewrapped, res.Rewrap.Sampled
	}
	return c.emit(stdout, summary, func() string {
		if res.Rewrap != nil {
			return fmt.Sprintf("rewrapped %d of %d DEKs to %s in %s (%d verified again remotely)\n",
				res.Rewrap.Rewrapped, res.Rewrap.Total, res.Version, time.Since(start).Round(time.Millisecond), res.Rewrap.Sampled)
		}
		if res.Reason != "" {
			return fmt.Sprintf("%s: %s (%s)\n", key, res.Outcome, res.Reason)
		}
		return fmt.Sprintf("%s: %s, nothing to re-wrap\n", key, res.Outcome)
	})
}

// progressTo shows rewrap progress: a bar on a terminal, JSON lines with
// --json, at most every 100 ms either way.
func progressTo(stderr io.Writer, asJSON bool, stdout io.Writer) func(done, total int) {
	var mu sync.Mutex
	var last time.Time
	tty := isTerminal(stderr)
	return func(done, total int) {
		mu.Lock()
		defer mu.Unlock()
		if done < total && time.Since(last) < 100*time.Millisecond {
			return
		}
		last = time.Now()
		switch {
		case asJSON:
			// Progress is advisory: a reader that went away does not
			// stop the rewrap.
			_ = json.NewEncoder(stdout).Encode(map[string]int{"done": done, "total": total})
		case tty:
			progressBar(stderr, done, total)
		}
	}
}
