package failpoint

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestHitKillsAtTheNthHit(t *testing.T) {
	killed := 0
	old := kill
	kill = func() { killed++ }
	t.Cleanup(func() { kill = old; armed.Store(nil) })

	if err := Arm(RewrapBatch + "=3"); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		Hit(SealTx) // another point: never counts
		Hit(RewrapBatch)
		if want := map[bool]int{true: 1, false: 0}[i >= 2]; killed != want {
			t.Fatalf("after hit %d: killed %d times, want %d", i+1, killed, want)
		}
	}
	if Armed() != RewrapBatch {
		t.Errorf("Armed() = %q", Armed())
	}
}

func TestArmRejectsWhatItCannotKillAt(t *testing.T) {
	for _, spec := range []string{"rewrap.batch", "rewrap.batch=0", "rewrap.batch=x", "nowhere=1", "=1"} {
		if err := Arm(spec); err == nil {
			t.Errorf("Arm(%q) accepted", spec)
		}
	}
	if err := Arm(""); err != nil || Armed() != "" {
		t.Errorf("Arm(\"\") = %v, armed %q", err, Armed())
	}
}

// TestArmedProcessDiesBySIGKILL runs the test binary with the point armed
// from the environment, as the harness runs cmkd.
func TestArmedProcessDiesBySIGKILL(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		for range 10 {
			Hit(SealTx)
		}
		os.Exit(0) // not killed: the parent sees exit 0
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestArmedProcessDiesBySIGKILL$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", EnvVar+"="+SealTx+"=2")
	err := cmd.Run()
	if err == nil || !strings.Contains(err.Error(), "killed") {
		t.Fatalf("child: %v, want killed", err)
	}

	cmd = exec.Command(os.Args[0], "-test.run=^TestArmedProcessDiesBySIGKILL$")
	cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", EnvVar+"=bogus=1")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown point") {
		t.Fatalf("child with a bad spec: %v %s, want a refusal naming the unknown point", err, out)
	}
}
