package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd/internal/failpoint"
)

// Config is one run of the harness on one backend.
type Config struct {
	// Seed decides every fault, its target and its timing.
	Seed uint64
	// Backend is "sqlite" (one replica) or "postgres" (Replicas replicas
	// on a PostgreSQL server of the harness's own).
	Backend  string
	Replicas int
	// Bin is the cmkd binary.
	Bin string
	// Dir holds everything the run writes; it is left for inspection.
	Dir string
	// Kills is the least number of kill -9s (at named points and at
	// random instants) the run makes.
	Kills int
	// Smoke shortens every fault and seeds few records.
	Smoke bool
	// Only, when set, runs just the faults whose names contain one of
	// these (kills included): the few of the smoke run in `make test`,
	// which keeps the harness from rotting.
	Only []string
	// Progress receives a line per step; nil for none.
	Progress io.Writer
}

// timings are a run's durations.
type timings struct {
	probe, grace, lease, redelivery time.Duration
	hold                            time.Duration // how long a fault lasts
	natsOutage                      time.Duration
	recover                         time.Duration // the longest wait for recovery
	perTenant                       int           // seeded records per tenant
	floodEvents                     int
	diskSize                        int64
}

func (c Config) timings() timings {
	t := timings{probe: time.Second, grace: 4 * time.Second, lease: 3 * time.Second, redelivery: 5 * time.Second,
		hold: 4 * time.Second, natsOutage: 60 * time.Second, recover: 120 * time.Second,
		perTenant: 300, floodEvents: 1000, diskSize: 384 << 20}
	if c.Smoke {
		t.hold, t.natsOutage, t.perTenant, t.floodEvents = 3*time.Second, 5*time.Second, 40, 100
	}
	return t
}

// Result is what a run found.
type Result struct {
	Seed     uint64        `json:"seed"`
	Backend  string        `json:"backend"`
	Replicas int           `json:"replicas"`
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"duration_ns"`
	Steps    []string      `json:"steps"`
	// Faults counts the faults injected, by kind; KillPoints the named
	// points processes were killed at (and "random" for kills at random
	// instants).
	Faults     map[string]int `json:"faults"`
	KillPoints map[string]int `json:"kill_points"`
	Figures    Figures        `json:"figures"`
	// Recovery is the longest time, per fault, from its end until every
	// usable tenant read again and the outbox was drained.
	Recovery   map[string]time.Duration `json:"recovery_ns"`
	Violations []Violation              `json:"violations"`
}

// Figures are the counts the goal is about: every lost, doubled, false
// and missed column zero.
type Figures struct {
	RecordsAcknowledged int `json:"records_acknowledged"`
	RecordsLost         int `json:"records_lost"`
	BadReads            int `json:"bad_reads"`
	DEKs                int `json:"deks"`
	DEKsLost            int `json:"deks_lost"`
	Seals               int `json:"seals"`
	FalseSeals          int `json:"false_seals"`
	MissedSeals         int `json:"missed_seals"`
	// SealsAfterKills counts the outages judged with more time because
	// replicas were killed in them: each kill may cost a lease's TTL
	// before another replica takes the key over.
	SealsAfterKills  int `json:"outages_with_kills"`
	StatusRecorded   int `json:"status_recorded"`
	StatusPublished  int `json:"status_published"`
	StatusLost       int `json:"status_lost"`
	StatusDoubled    int `json:"status_doubled"`
	StatusOutOfOrder int `json:"status_out_of_order"`
	MalformedSent    int `json:"malformed_sent"`
	DeadLettered     int `json:"dead_lettered"`
	MalformedNotDead int `json:"malformed_not_dead_lettered"`
	PlaintextLeaks   int `json:"plaintext_leaks"`
	UnexpectedExits  int `json:"unexpected_exits"`
	Puts             int `json:"puts"`
	PutErrors        int `json:"put_errors"`
	Gets             int `json:"gets"`
	GetsSealed       int `json:"gets_sealed"`
	GetErrors        int `json:"get_errors"`
	// MaxTimeToSeal is the longest time from a key becoming unusable (for
	// unreachable: from the end of the grace) to its tenants' seal, with
	// no replica killed meanwhile; MaxTimeToSealAfterKills with some.
	MaxTimeToSeal           time.Duration `json:"max_time_to_seal_ns"`
	MaxTimeToSealAfterKills time.Duration `json:"max_time_to_seal_after_kills_ns"`
}

// Violation is a broken invariant and the shortest history that shows it.
type Violation struct {
	Invariant string `json:"invariant"`
	Detail    string `json:"detail"`
	History   string `json:"history"`
}

// Failed reports whether an invariant broke.
func (r *Result) Failed() bool { return len(r.Violations) > 0 }

// runner is one run in progress.
type runner struct {
	cfg   Config
	t     timings
	c     *cluster
	hist  *history
	truth *truth
	rng   *rand.Rand
	wl    *workload
	res   *Result

	tenants   []tenant
	malformed malformedSent
	kills     int
	killedAt  []time.Time
	mu        sync.Mutex
}

// Run runs the harness once: it starts the cluster, seeds it, runs the
// seeded sequence of faults under the workload, heals everything, and
// checks the invariants. An error is a failure of the harness itself (it
// could not start something); broken invariants are in the Result.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Replicas == 0 {
		cfg.Replicas = map[string]int{"postgres": 3}[cfg.Backend]
		if cfg.Replicas == 0 {
			cfg.Replicas = 1
		}
	}
	if cfg.Backend != "sqlite" && cfg.Backend != "postgres" {
		return nil, fmt.Errorf("backend %q: want sqlite or postgres", cfg.Backend)
	}
	if cfg.Backend == "sqlite" && cfg.Replicas != 1 {
		return nil, errors.New("sqlite serves one replica")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, t: cfg.timings(), hist: newHistory(cfg.Progress), truth: newTruth(),
		rng: rand.New(rand.NewPCG(cfg.Seed, 0x63686173)), // #nosec G404 -- a reproducible sequence, not a secret
		res: &Result{Seed: cfg.Seed, Backend: cfg.Backend, Replicas: cfg.Replicas, Started: time.Now().UTC(),
			Faults: map[string]int{}, KillPoints: map[string]int{}, Recovery: map[string]time.Duration{}}}
	r.hist.note("seed %d, backend %s, %d replica(s), dir %s", cfg.Seed, cfg.Backend, cfg.Replicas, cfg.Dir)
	c, err := startCluster(ctx, cfg, r.t, r.hist)
	if c != nil {
		defer c.close()
	}
	if err != nil {
		return nil, err
	}
	r.c = c
	if err := r.execute(ctx); err != nil {
		return nil, err
	}
	r.res.Duration = time.Since(r.hist.start)
	return r.res, nil
}

func (r *runner) execute(ctx context.Context) error {
	l := newLedger()
	tenants, err := r.c.seed(ctx, r.t.perTenant, l)
	if err != nil {
		return fmt.Errorf("seed: %w", err)
	}
	r.tenants = tenants
	r.hist.note("seeded %d tenants on 4 keys in 2 vaults, %d records", len(tenants), len(l.snapshot()))
	for _, rep := range r.c.replicas {
		if err := rep.start(ctx, ""); err != nil {
			return err
		}
	}
	st, err := r.c.openStore(ctx, 20) // a new DEK every 20 writes: new DEKs keep coming during rewraps
	if err != nil {
		return err
	}
	defer st.Close()
	r.wl = &workload{st: st, tenants: tenants, ledger: l, hist: r.hist}
	wctx, stopWork := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.wl.run(wctx, 3, r.cfg.Seed) }()
	go r.restartKilled(wctx)

	runErr := r.steps(ctx)
	stopWork()
	wg.Wait()
	if runErr != nil {
		return runErr
	}
	r.heal(ctx)
	return r.check(ctx)
}

// steps runs the seeded sequence: every fault once, in a seeded order,
// then kills until the run has made cfg.Kills.
func (r *runner) steps(ctx context.Context) error {
	faults := r.only(r.faults())
	r.rng.Shuffle(len(faults), func(i, j int) { faults[i], faults[j] = faults[j], faults[i] })
	kills := r.only(r.killFaults())
	if len(kills) == 0 {
		kills = r.killFaults()[len(failpoint.Points):] // at random instants
	}
	// Kills are spread among the other faults, then the rest follow.
	var seq []fault
	for i, f := range faults {
		seq = append(seq, f)
		if i < len(kills) {
			seq = append(seq, kills[i])
		}
	}
	for i := len(faults); i < len(kills); i++ {
		seq = append(seq, kills[i])
	}
	for i := 0; ; i++ {
		var f fault
		switch {
		case i < len(seq):
			f = seq[i]
		case r.kills < r.cfg.Kills:
			f = kills[r.rng.IntN(len(kills))]
		default:
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		r.hist.note("step %d: %s (%s)", i+1, f.name, f.kind)
		r.res.Steps = append(r.res.Steps, f.name)
		r.res.Faults[f.kind]++
		healed, err := f.run(ctx)
		if err != nil {
			return fmt.Errorf("step %d (%s): %w", i+1, f.name, err)
		}
		r.awaitRecovery(ctx, f.name, healed)
	}
}

// only keeps the faults cfg.Only names (all when it names none).
func (r *runner) only(fs []fault) []fault {
	if len(r.cfg.Only) == 0 {
		return fs
	}
	var out []fault
	for _, f := range fs {
		for _, o := range r.cfg.Only {
			if strings.Contains(f.name, o) {
				out = append(out, f)
				break
			}
		}
	}
	return out
}

// awaitRecovery waits until every tenant whose key is usable reads again,
// every replica runs and the outbox is drained, and records how long that
// took after healed.
func (r *runner) awaitRecovery(ctx context.Context, name string, healed time.Time) {
	deadline := time.Now().Add(r.t.recover)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if r.recovered(ctx) {
			took := time.Since(healed)
			if took > r.res.Recovery[name] {
				r.res.Recovery[name] = took
			}
			r.hist.note("  recovered %.1fs after the fault ended", took.Seconds())
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.violate("recovery", fmt.Sprintf("not recovered within %s of %q ending", r.t.recover, name), nil, healed.Add(-time.Minute))
	r.res.Recovery[name] = r.t.recover
}

func (r *runner) recovered(ctx context.Context) bool {
	for _, rep := range r.c.replicas {
		if !rep.alive() {
			return false
		}
	}
	n, err := r.c.unsent(ctx)
	if err != nil || n > 0 {
		return false
	}
	for _, t := range r.tenants {
		tctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := r.wl.st.Get(tctx, t.ID, "s0000")
		cancel()
		if err != nil {
			return false
		}
	}
	return true
}

// restartKilled starts again, unarmed, every replica that killed itself
// at a kill point, as a supervisor (Kubernetes, systemd) would.
func (r *runner) restartKilled(ctx context.Context) {
	cases := make(chan *replica)
	for _, rep := range r.c.replicas {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case p := <-rep.hitPoint:
					r.countKill(p)
					cases <- rep
				}
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case rep := <-cases:
			if err := rep.start(ctx, ""); err != nil && ctx.Err() == nil {
				r.violate("exits", fmt.Sprintf("%s did not start again: %v", rep.name, err), nil, time.Time{})
			}
		}
	}
}

// countKill counts a kill at point ("name=N" as armed, or "random").
func (r *runner) countKill(point string) {
	point, _, _ = strings.Cut(point, "=")
	r.mu.Lock()
	defer r.mu.Unlock()
	r.kills++
	r.killedAt = append(r.killedAt, time.Now())
	r.res.KillPoints[point]++
}

// violate records a broken invariant with the history of subjects since
// from (zero: the whole run).
func (r *runner) violate(invariant, detail string, subjects []string, from time.Time) {
	if from.IsZero() {
		from = r.hist.start
	}
	h := r.hist.format(r.hist.about(from, time.Now(), subjects...))
	r.mu.Lock()
	r.res.Violations = append(r.res.Violations, Violation{Invariant: invariant, Detail: detail, History: h})
	r.mu.Unlock()
	r.hist.print("VIOLATION " + invariant + ": " + detail)
}

// heal ends every fault and makes every key usable, and waits for the
// cluster to settle: what the final checks read.
func (r *runner) heal(ctx context.Context) {
	r.hist.note("healing: every key usable, every replica running")
	for _, v := range r.c.vaults {
		v.SetFaults(zeroFaults())
		v.SetThrottle(-1, 0, false)
		v.Grant()
	}
	for _, rep := range r.c.replicas {
		if !rep.alive() {
			_ = rep.start(ctx, "")
		}
	}
	healed := time.Now()
	r.awaitRecovery(ctx, "final", healed)
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
