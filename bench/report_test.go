package bench

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// A missed goal is listed with its measured value and what limits it; a
// met one is not, and the machine and command head the report.
func TestMarkdownListsMissedGoals(t *testing.T) {
	r := &Result{Scenario: "s", Title: "Scenario", Setup: "tiny"}
	r.Add("speed", 1234.5, "DEK/s")
	r.Goal("fast", false, "0.5×", "the emulator")
	r.Goal("correct", true, "0", "unused")
	var b bytes.Buffer
	Report{Machine: ThisMachine("cmkd bench", false), Results: []*Result{r}}.WriteMarkdown(&b)
	md := b.String()
	for _, want := range []string{"- Command: `cmkd bench`", "| s | fast | 0.5× | **no** |", "| s | correct | 0 | yes |",
		"**s — fast**: measured 0.5×. Limited by: the emulator.", "| speed | 1234 | DEK/s |"} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "unused") {
		t.Error("a met goal's limit was printed")
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 41: "41", 0.01234: "0.0123", 1.5: "1.5", 12.34: "12.3", 4096.7: "4097", -2.5: "-2.5"} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestPercentileIsNearestRank(t *testing.T) {
	ds := []time.Duration{5, 1, 4, 2, 3} // unsorted on purpose
	for _, tc := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {20, 1}, {50, 3}, {99, 5}, {100, 5}} {
		if got := Percentile(ds, tc.p); got != tc.want {
			t.Errorf("p%v = %v, want %v", tc.p, got, tc.want)
		}
	}
	if got := Percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v, want 0", got)
	}
	if ds[0] != 5 {
		t.Error("Percentile sorted its argument")
	}
}

// A part of a scenario that did not run is said so, with why, in the
// summary and in the scenario's section, and in the console table.
func TestReportsShowSkippedParts(t *testing.T) {
	r := &Result{Scenario: "s", Title: "Scenario", Setup: "tiny"}
	r.Skip("PostgreSQL: server down")
	var md, text bytes.Buffer
	rep := Report{Machine: ThisMachine("cmkd bench", false), Results: []*Result{r}}
	rep.WriteMarkdown(&md)
	rep.WriteText(&text)
	for _, want := range []string{"Skipped, so not measured:\n\n- **s**: PostgreSQL: server down", "**Skipped:** PostgreSQL: server down"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
	if !strings.Contains(text.String(), "SKIPPED PostgreSQL: server down") {
		t.Errorf("console table lacks the skip:\n%s", text.String())
	}
}
