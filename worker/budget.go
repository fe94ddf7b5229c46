package worker

import (
	"log/slog"
	"time"
)

// vaultWork is one vault's share of the scheduler: its running checks and
// rewraps (bounded per vault, so a hung vault holds back only its own
// keys) and its effective probe interval. Guarded by the scheduler's mutex.
type vaultWork struct {
	url     string
	keys    int
	checks  int
	rewraps int
	// cost is the Key Vault calls one check of every key of the vault
	// takes.
	cost int
	// interval is the effective probe interval: ProbeInterval, or longer
	// when checking every key that often would spend more than the probe
	// budget of the vault's limit.
	interval  time.Duration
	stretched bool
	// eventTAT paces event-driven checks (see eventSlotLocked).
	eventTAT time.Time
}

// budgetLocked sets v's effective interval: checks of v's keys may spend
// at most ProbeBudget of the vault's limit, so with many keys the interval
// stretches instead of the probes tripping Key Vault's throttle or starving
// rewraps. A change of the stretch is logged with the numbers.
func (s *scheduler) budgetLocked(v *vaultWork) {
	perSecond := s.cfg.ProbeBudget * s.limits.VaultLimit(v.url)
	need := time.Duration(float64(v.cost) / perSecond * float64(time.Second))
	interval := max(s.cfg.ProbeInterval, need)
	stretched := interval > s.cfg.ProbeInterval
	changed := stretched != v.stretched || stretched && relDiff(interval, v.interval) > 0.1
	v.interval, v.stretched = interval, stretched
	s.metrics.vaultInterval(v.url, interval, stretched)
	if !changed {
		return
	}
	if stretched {
		s.log.Warn("probe budget: checking every key at the probe interval would exceed the vault's probe budget; probing less often",
			slog.String("vault", v.url), slog.Int("keys", v.keys), slog.Int("calls_per_round", v.cost),
			slog.Float64("budget_calls_per_second", perSecond), slog.Duration("probe_interval", s.cfg.ProbeInterval),
			slog.Duration("effective_interval", interval))
	} else {
		s.log.Info("probe budget: every key of the vault is probed at the probe interval again",
			slog.String("vault", v.url), slog.Int("keys", v.keys), slog.Duration("probe_interval", interval))
	}
}

func relDiff(a, b time.Duration) float64 {
	if b == 0 {
		return 1
	}
	d := float64(a-b) / float64(b)
	if d < 0 {
		return -d
	}
	return d
}
