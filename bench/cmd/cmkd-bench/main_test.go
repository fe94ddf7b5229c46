package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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
	for _, want := range []string{"rewrap", "rewrap-hsm", "seal", "store", "events", "scaling", "multivault", "probeload", "replicas"} {
		if !seen[want] {
			t.Errorf("scenario %q not registered; have %v", want, names())
		}
	}
}
