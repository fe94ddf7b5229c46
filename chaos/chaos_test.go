package chaos_test

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cmkd-io/cmkd/chaos"
)

// TestSmoke runs the harness as `make chaos` does, with a fixed seed and
// a few faults — a kill inside a seal's transaction, one mid-rewrap, a
// vault unreachable past the grace, a locked store, malformed events —
// so that it cannot rot: every invariant must hold, and the faults must
// have been injected.
func TestSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("starts cmkd processes: skipped with -short")
	}
	bin := filepath.Join(t.TempDir(), "cmkd")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/cmkd").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	var progress strings.Builder
	res, err := chaos.Run(t.Context(), chaos.Config{
		Seed: 42, Backend: "sqlite", Bin: bin, Dir: t.TempDir(), Kills: 2, Smoke: true,
		Only:     []string{"seal.tx", "rewrap.batch", "unreachable longer", "SQLite locked", "malformed"},
		Progress: &progress,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if res.Failed() {
		t.Fatalf("%s\nprogress:\n%s", res.Summary(), progress.String())
	}
	if got := len(res.Steps); got < 5 {
		t.Fatalf("%d steps, want the 5 faults asked for: %v", got, res.Steps)
	}
	f := res.Figures
	if f.RecordsAcknowledged == 0 || f.DEKs == 0 || f.Seals == 0 || f.StatusPublished == 0 || f.MalformedSent == 0 || f.DeadLettered != f.MalformedSent {
		t.Fatalf("the run checked nothing: %+v", f)
	}
	if res.KillPoints["seal.tx"]+res.KillPoints["rewrap.batch"]+res.KillPoints["random"] < 2 {
		t.Fatalf("kills %v, want at least 2", res.KillPoints)
	}
}
