package bench

import (
	"bytes"
	"strings"
	"testing"
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
