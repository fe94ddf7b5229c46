// Command cmkd-bench runs cmkd's benchmark scenarios against in-process
// emulators, embedded NATS, SQLite and PostgreSQL (CMKD_TEST_POSTGRES or
// the local server; scenarios report their PostgreSQL parts as skipped
// without one), prints the table and writes the Markdown and JSON reports
// (`make bench`). It is its own command so that
// the production binary carries only what an operator runs.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/bench/apicost"
	"github.com/cmkd-io/cmkd/bench/layers"
	"github.com/cmkd-io/cmkd/bench/replicas"
	"github.com/cmkd-io/cmkd/bench/rewrap"
	"github.com/cmkd-io/cmkd/bench/schedule"
	"github.com/cmkd-io/cmkd/bench/seal"
	"github.com/cmkd-io/cmkd/bench/storecost"
	"github.com/cmkd-io/cmkd/bench/throughput"
)

// scenarios are every scenario, in the order the issues asked for them:
// the benchmark issue's six, the per-key scheduler's two, and the
// scale-out issue's replicas (its store goals are in the store scenario),
// what the second encryption layer costs, and what an application pays
// per call through the Go API and the HTTP API.
func scenarios() []bench.Scenario {
	return []bench.Scenario{rewrap.Throttle, rewrap.HSM, seal.Scenario, storecost.Scenario,
		throughput.Scenario, rewrap.Scaling, schedule.MultiVault, schedule.ProbeLoad, replicas.Scenario,
		layers.Scenario, apicost.Scenario}
}

type benchFlags struct {
	smoke          bool
	only, md, json string
}

func main() {
	// The replicas scenario starts this binary again for each replica.
	replicas.Serve()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Exit codes, as cmkd's.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is a bad flag or argument: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	err := runBench(ctx, args, stdout, stderr)
	var ue *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "cmkd-bench:", err)
		return exitUsage
	default:
		fmt.Fprintln(stderr, "cmkd-bench:", err)
		return exitError
	}
}

func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f benchFlags
	fs := flag.NewFlagSet("cmkd-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: cmkd-bench [flags]   (make bench runs it and rewrites docs/benchmarks.md and .json)")
		fs.PrintDefaults()
	}
	fs.BoolVar(&f.smoke, "smoke", false, "tiny sizes: checks the harness works, measures nothing")
	fs.StringVar(&f.only, "only", "", "comma-separated scenarios to run (default all): "+names())
	fs.StringVar(&f.md, "out", "", "write the Markdown report here (e.g. docs/benchmarks.md)")
	fs.StringVar(&f.json, "json", "", "write the JSON report here (e.g. docs/benchmarks.json)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return usagef("%v", err)
	}
	if fs.NArg() > 0 {
		return usagef("cmkd-bench takes no arguments, got %q", fs.Args())
	}
	run, err := selectScenarios(f.only)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "cmkd-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	results, err := bench.RunAll(ctx, run, bench.Options{Smoke: f.smoke, Dir: dir, Progress: stderr})
	if err != nil {
		return err
	}
	rep := bench.Report{Machine: bench.ThisMachine("go run ./bench/cmd/cmkd-bench "+strings.Join(args, " "), f.smoke), Results: results}
	rep.WriteText(stdout)
	if f.only != "" && f.json != "" {
		// Keep what the report held for the scenarios not run now.
		if rep, err = merged(rep, f.json); err != nil {
			return err
		}
	}
	return writeReports(rep, f)
}

// merged is rep with the other scenarios' results from the JSON report at
// path, if there is one.
func merged(rep bench.Report, path string) (bench.Report, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return rep, nil
	}
	if err != nil {
		return rep, err
	}
	var prev bench.Report
	if err := json.Unmarshal(b, &prev); err != nil {
		return rep, fmt.Errorf("%s: %w (remove it, or run every scenario)", path, err)
	}
	if prev.Machine.Smoke != rep.Machine.Smoke {
		return rep, fmt.Errorf("%s holds a smoke run and this is not one, or the other way round: run every scenario", path)
	}
	var names []string
	for _, s := range scenarios() {
		names = append(names, s.Name)
	}
	return rep.Merge(prev, names), nil
}

func names() string {
	var n []string
	for _, s := range scenarios() {
		n = append(n, s.Name)
	}
	return strings.Join(n, ", ")
}

func selectScenarios(only string) ([]bench.Scenario, error) {
	all := scenarios()
	if only == "" {
		return all, nil
	}
	var out []bench.Scenario
	for _, name := range strings.Split(only, ",") {
		i := slices.IndexFunc(all, func(s bench.Scenario) bool { return s.Name == strings.TrimSpace(name) })
		if i < 0 {
			return nil, usagef("no scenario %q; there are: %s", name, names())
		}
		out = append(out, all[i])
	}
	return out, nil
}

func writeReports(rep bench.Report, f benchFlags) error {
	if f.md != "" {
		if err := writeFile(f.md, func(w io.Writer) error { rep.WriteMarkdown(w); return nil }); err != nil {
			return err
		}
	}
	if f.json != "" {
		return writeFile(f.json, rep.WriteJSON)
	}
	return nil
}

// writeFile writes through a temporary file, so an interrupted run leaves
// the previous report whole.
func writeFile(path string, write func(io.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".bench-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if err := write(tmp); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
