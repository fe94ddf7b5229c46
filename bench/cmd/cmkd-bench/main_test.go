package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd/bench"
)

// `cmkd-bench --smoke` runs a scenario end to end and writes both reports;
// the scenarios' own packages smoke-test every scenario.
func TestBenchCommandWritesReports(t *testing.T) {
	dir := t.TempDir()
	md, js := filepath.Join(dir, "b.md"), filepath.Join(dir, "b.json")
	var out, errs bytes.Buffer
	code := run(t.Context(), []string{"--smoke", "--only", "store", "--out", md, "--json", js}, &out, &errs)
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	if !strings.Contains(out.String(), "Get encrypted ÷ plain") || !strings.Contains(errs.String(), "[1/1]") {
		t.Fatalf("no table or progress:\n%s\n%s", out.String(), errs.String())
	}
	text, err := os.ReadFile(md)
	if err != nil || !strings.Contains(string(text), "| store | SQLite: warm Get ≤ 1.2× plain |") ||
		!strings.Contains(string(text), "Smoke run") {
		t.Fatalf("markdown report: %v\n%s", err, text)
	}
	var rep bench.Report
	raw, err := os.ReadFile(js)
	if err != nil || json.Unmarshal(raw, &rep) != nil || len(rep.Results) != 1 || rep.Machine.Cores < 1 {
		t.Fatalf("json report: %v %+v", err, rep)
	}
}

func TestBenchCommandRejectsUnknownScenario(t *testing.T) {
	var out, errs bytes.Buffer
	if code := run(t.Context(), []string{"--only", "nope"}, &out, &errs); code != exitUsage ||
		!strings.Contains(errs.String(), "there are: rewrap") {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
}

// With --only, the report keeps the other scenarios' results from the
// JSON it updates, each saying which run measured it, in scenario order.
func TestBenchCommandOnlyUpdatesItsScenarios(t *testing.T) {
	dir := t.TempDir()
	md, js := filepath.Join(dir, "b.md"), filepath.Join(dir, "b.json")
	earlier := bench.Report{
		Machine: bench.Machine{Date: "2026-01-02T03:04:05Z", Command: "earlier run", Cores: 2, Smoke: true},
		Results: []*bench.Result{
			{Scenario: "probeload", Title: "Probe load", Setup: "before"},
			{Scenario: "seal", Title: "old seal", Setup: "replaced"},
			{Scenario: "rewrap", Title: "Rewrap", Setup: "before"},
		},
	}
	raw, err := json.Marshal(earlier)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(js, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errs bytes.Buffer
	if code := run(t.Context(), []string{"--smoke", "--only", "seal", "--out", md, "--json", js}, &out, &errs); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var rep bench.Report
	if raw, err = os.ReadFile(js); err != nil || json.Unmarshal(raw, &rep) != nil {
		t.Fatalf("json report: %v %s", err, raw)
	}
	var got []string
	for _, r := range rep.Results {
		got = append(got, r.Scenario)
	}
	if !slices.Equal(got, []string{"rewrap", "seal", "probeload"}) {
		t.Fatalf("scenarios %v, want rewrap, seal, probeload (the harness's order)", got)
	}
	if r := rep.Results[0]; r.Ran == nil || r.Ran.Command != "earlier run" {
		t.Errorf("a kept result does not name its run: %+v", r.Ran)
	}
	if r := rep.Results[1]; r.Ran != nil || r.Title == "old seal" {
		t.Errorf("the scenario run now kept its old result or a run of its own: %+v", r)
	}
	text, err := os.ReadFile(md)
	if err != nil || !strings.Contains(string(text), "Measured in an earlier run: `earlier run`") {
		t.Fatalf("markdown does not say which run measured a kept result: %v\n%s", err, text)
	}
}

// Every scenario package is registered, the scale-out issue's replicas
// scenario included, each under a name of its own.
func TestEveryScenarioRegistered(t *testing.T) {
	seen := map[string]bool{}
	for _, s := range scenarios() {
		if seen[s.Name] {
			t.Errorf("scenario %q registered twice", s.Name)
		}
		seen[s.Name] = true
	}
	for _, want := range []string{"rewrap", "rewrap-hsm", "seal", "store", "events", "scaling", "multivault", "probeload", "replicas", "layers", "api"} {
		if !seen[want] {
			t.Errorf("scenario %q not registered; have %v", want, names())
		}
	}
}
