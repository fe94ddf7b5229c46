// Package failpoint kills the process at a named point of its work, when
// the chaos harness arms one: a kill -9 at an instant chosen by name rather
// than by luck (the crash-safety claims are about such instants: mid-batch,
// inside a seal's transaction, between an outbox write and its publish).
//
// Nothing is armed unless the environment variable CMKD_FAILPOINT is set,
// as name=N: the Nth time the point name is hit, the process sends itself
// SIGKILL. Hit costs one atomic load when nothing is armed.
package failpoint

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
)

// EnvVar arms a point: name=N.
const EnvVar = "CMKD_FAILPOINT"

// The points cmkd hits.
const (
	RewrapDEK      = "rewrap.dek"      // a DEK's new wrapping committed, the batch under way
	RewrapBatch    = "rewrap.batch"    // a batch committed, the next not read
	SealTx         = "seal.tx"         // a seal written, not committed
	OutboxClaimed  = "outbox.claimed"  // status events committed and claimed, not published
	RelayPublished = "relay.published" // status events published, not marked sent
)

// Points lists every point, for the harness and for checks of EnvVar.
var Points = []string{RewrapDEK, RewrapBatch, SealTx, OutboxClaimed, RelayPublished}

type plan struct {
	name string
	left atomic.Int64
}

var armed atomic.Pointer[plan]

func init() {
	if v := os.Getenv(EnvVar); v != "" {
		if err := Arm(v); err != nil {
			// A harness that asked for a kill and gets none would report
			// a point as survived that was never reached: refuse to run.
			fmt.Fprintf(os.Stderr, "cmkd: %s: %v\n", EnvVar, err)
			os.Exit(2)
		}
	}
}

// Arm arms spec (name=N, N ≥ 1), replacing what was armed; "" disarms.
func Arm(spec string) error {
	if spec == "" {
		armed.Store(nil)
		return nil
	}
	name, n, ok := strings.Cut(spec, "=")
	count, err := strconv.ParseInt(n, 10, 64)
	if !ok || err != nil || count < 1 {
		return fmt.Errorf("%q: want name=N with N ≥ 1", spec)
	}
	if !known(name) {
		return fmt.Errorf("%q: unknown point %q (known: %s)", spec, name, strings.Join(Points, ", "))
	}
	p := &plan{name: name}
	p.left.Store(count)
	armed.Store(p)
	return nil
}

// Armed is the armed spec's point name, "" when none.
func Armed() string {
	if p := armed.Load(); p != nil {
		return p.name
	}
	return ""
}

func known(name string) bool {
	for _, p := range Points {
		if p == name {
			return true
		}
	}
	return false
}

// kill is what a hit armed point does; tests replace it.
var kill = func() {
	p, err := os.FindProcess(os.Getpid())
	if err == nil {
		err = p.Kill() // SIGKILL on Unix: no deferred function, no flush
	}
	if err != nil {
		os.Exit(137)
	}
	select {} // the signal is on its way
}

// Hit marks the point name; armed for it, the Nth hit kills the process.
func Hit(name string) {
	p := armed.Load()
	if p == nil || p.name != name {
		return
	}
	if p.left.Add(-1) == 0 {
		kill()
	}
}
