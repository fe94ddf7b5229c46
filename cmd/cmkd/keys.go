package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

// keyRow is one watched key as `cmkd keys` shows it.
type keyRow struct {
	Key           cmkd.KeyID `json:"key"`
	Vault         string     `json:"vault"`
	TenantsActive int        `json:"tenants_active"`
	TenantsSealed int        `json:"tenants_sealed"`
	// State is what the last check found (usable, disabled, unreachable,
	// ...), "unchecked" before the first.
	State           string     `json:"state"`
	CheckedBy       string     `json:"checked_by,omitempty"`
	LastProbe       *time.Time `json:"last_probe,omitempty"`
	LastProbeAgeSec *float64   `json:"last_probe_age_seconds,omitempty"`
	IntervalSec     float64    `json:"probe_interval_seconds,omitempty"`
	Rewrap          *rewrapRow `json:"rewrap,omitempty"`
}

type rewrapRow struct {
	Target  string `json:"target_version"`
	Done    int    `json:"done"`
	Total   int    `json:"total"`
	Running bool   `json:"running"`
}

func runKeys(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("keys", "keys [--json]", stderr)
	c.register(fs)
	return storeCommand(ctx, &c, fs, argv, 0, "no arguments", stderr, func(d *deps) error {
		rows, err := keyRows(ctx, d.store, time.Now())
		if err != nil {
			return err
		}
		return c.emit(stdout, rows, func() string { return keyTable(rows) })
	})
}

// keyRows joins the keys in use with what the worker last saw of them.
func keyRows(ctx context.Context, st *store.Store, now time.Time) ([]keyRow, error) {
	uses, err := st.Keys(ctx)
	if err != nil {
		return nil, err
	}
	statuses, err := st.KeyStatuses(ctx)
	if err != nil {
		return nil, err
	}
	byKey := map[cmkd.KeyID]store.KeyStatus{}
	for _, s := range statuses {
		byKey[s.Key] = s
	}
	rows := make([]keyRow, 0, len(uses))
	for _, u := range uses {
		r := keyRow{Key: u.Key, Vault: u.Key.Vault, TenantsActive: u.Active, TenantsSealed: u.Sealed, State: "unchecked"}
		if s, ok := byKey[u.Key]; ok {
			r.State, r.CheckedBy, r.IntervalSec = s.Outcome, s.Holder, s.Interval.Seconds()
			if !s.ProbedAt.IsZero() {
				at, age := s.ProbedAt, now.Sub(s.ProbedAt).Seconds()
				r.LastProbe, r.LastProbeAgeSec = &at, &age
			}
			if s.Rewrap.Total > 0 || s.Rewrap.Running {
				r.Rewrap = &rewrapRow{Target: s.Rewrap.Target, Done: s.Rewrap.Done, Total: s.Rewrap.Total, Running: s.Rewrap.Running}
			}
		}
		rows = append(rows, r)
	}
	return rows, nil
}

func keyTable(rows []keyRow) string {
	if len(rows) == 0 {
		return "no keys in use: add a tenant with cmkd tenant add\n"
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tTENANTS\tSTATE\tLAST PROBE\tINTERVAL\tREWRAP")
	for _, r := range rows {
		tenants := fmt.Sprint(r.TenantsActive)
		if r.TenantsSealed > 0 {
			tenants += fmt.Sprintf(" (+%d sealed)", r.TenantsSealed)
		}
		age := "-"
		if r.LastProbeAgeSec != nil {
			age = (time.Duration(*r.LastProbeAgeSec * float64(time.Second))).Round(time.Second).String() + " ago"
		}
		interval := "-"
		if r.IntervalSec > 0 {
			interval = time.Duration(r.IntervalSec * float64(time.Second)).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Key, tenants, r.State, age, interval, rewrapText(r.Rewrap))
	}
	_ = tw.Flush() // into a strings.Builder, which cannot fail
	return b.String()
}

func rewrapText(r *rewrapRow) string {
	if r == nil {
		return "-"
	}
	s := fmt.Sprintf("%d/%d to %s", r.Done, r.Total, r.Target)
	if r.Running {
		return s + " (running)"
	}
	return s
}
