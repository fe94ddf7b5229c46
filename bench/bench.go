// Package bench is cmkd's benchmark harness: scenarios that run the real
// worker parts against the in-process emulators, embedded NATS, a SQLite
// file and, where a scenario needs it, PostgreSQL (CMKD_TEST_POSTGRES or the
// local server; without one, that part is reported as skipped), and report
// every speed as a ratio against a baseline measured in the same run
// (`make bench`). The numbers go to docs/benchmarks.md and a JSON file.
package bench

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"
)

// Options are what every scenario is given.
type Options struct {
	// Smoke runs tiny sizes: `make test` runs every scenario this way so
	// the harness cannot rot.
	Smoke bool
	// Dir is a scratch directory the scenario may fill; removed afterwards.
	Dir string
	// Progress receives one line per step of a long scenario; never nil.
	Progress io.Writer
	// Logger receives the parts' own logs (discarded by default).
	Logger *slog.Logger
}

// Say writes one progress line.
func (o Options) Say(format string, args ...any) {
	fmt.Fprintf(o.Progress, "  "+format+"\n", args...)
}

// Pick returns smoke when running a smoke test, full otherwise.
func Pick[T any](o Options, full, smoke T) T {
	if o.Smoke {
		return smoke
	}
	return full
}

// Metric is one measured value.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Goal is one target of the benchmark issue and whether this run met it.
type Goal struct {
	Text string `json:"goal"`
	Met  bool   `json:"met"`
	// Measured says what was measured against the goal.
	Measured string `json:"measured"`
	// Limit says, when the goal is missed, what limits it.
	Limit string `json:"limit,omitempty"`
}

// Result is what one scenario measured.
type Result struct {
	Scenario string        `json:"scenario"`
	Title    string        `json:"title"`
	Setup    string        `json:"setup"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	Metrics  []Metric      `json:"metrics"`
	Goals    []Goal        `json:"goals,omitempty"`
	Notes    []string      `json:"notes,omitempty"`
	// Ran is the run that measured this result, when it is not the
	// report's own: a report updated with -only keeps the results of the
	// scenarios it did not run, each with its run.
	Ran *Machine `json:"ran,omitempty"`
	// Skipped lists the parts of the scenario that did not run, each with
	// why (a PostgreSQL server that does not answer).
	Skipped []string `json:"skipped,omitempty"`
}

// Add appends a metric.
func (r *Result) Add(name string, value float64, unit string) {
	r.Metrics = append(r.Metrics, Metric{name, value, unit})
}

// Ratio appends num/den as a metric in unit "×" (0 when den is 0).
func (r *Result) Ratio(name string, num, den float64) float64 {
	v := 0.0
	if den != 0 {
		v = num / den
	}
	r.Add(name, v, "×")
	return v
}

// Goal appends a goal; limit is kept only when the goal is missed.
func (r *Result) Goal(text string, met bool, measured, limit string) {
	g := Goal{Text: text, Met: met, Measured: measured}
	if !met {
		g.Limit = limit
	}
	r.Goals = append(r.Goals, g)
}

// Note appends a remark.
func (r *Result) Note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// Skip records that a part of the scenario did not run, and why.
func (r *Result) Skip(format string, args ...any) {
	r.Skipped = append(r.Skipped, fmt.Sprintf(format, args...))
}

// Metric returns the value of the metric name, and whether there is one.
func (r *Result) Metric(name string) (float64, bool) {
	i := slices.IndexFunc(r.Metrics, func(m Metric) bool { return m.Name == name })
	if i < 0 {
		return 0, false
	}
	return r.Metrics[i].Value, true
}

// Scenario is one benchmark.
type Scenario struct {
	// Name is the short id used on the command line and in JSON.
	Name string
	// Title is the heading in the report.
	Title string
	Run   func(ctx context.Context, o Options) (*Result, error)
}
