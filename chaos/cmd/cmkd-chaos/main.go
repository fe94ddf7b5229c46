// Command cmkd-chaos runs the chaos harness (`make chaos`): cmkd as real
// processes, faults injected by the hundred from a seeded sequence, then
// the invariants checked; it writes docs/reliability.md and .json and
// exits 1 if any invariant broke, printing the seed and the history that
// shows it. It is its own command so that the production binary carries
// only what an operator runs.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/cmkd-io/cmkd/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cmkd-chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	seed := fs.Uint64("seed", 0, "the seed of the fault sequence (0: a new one, printed)")
	backends := fs.String("backends", "sqlite,postgres", "the backends to run on, in order: sqlite (1 replica), postgres (3 replicas)")
	kills := fs.Int("kills", 20, "the least number of kill -9s per backend")
	smoke := fs.Bool("smoke", false, "short faults and few records: the run of make test")
	bin := fs.String("bin", "", "the cmkd binary (empty: go build ./cmd/cmkd)")
	dir := fs.String("dir", "", "where runs write (empty: a new temporary directory, kept)")
	md := fs.String("out", "", "write the Markdown report here (docs/reliability.md)")
	js := fs.String("json", "", "write the JSON report here (docs/reliability.json)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *seed == 0 {
		var b [8]byte
		_, _ = rand.Read(b[:])
		*seed = binary.LittleEndian.Uint64(b[:]) >> 1
	}
	fmt.Fprintf(stdout, "cmkd-chaos: seed %d (replay: make chaos SEED=%d)\n", *seed, *seed)
	if *dir == "" {
		d, err := os.MkdirTemp("", fmt.Sprintf("cmkd-chaos-%d-", *seed))
		if err != nil {
			fmt.Fprintln(stderr, "cmkd-chaos:", err)
			return 1
		}
		*dir = d
	}
	if *bin == "" {
		*bin = filepath.Join(*dir, "cmkd")
		fmt.Fprintln(stdout, "building cmkd…")
		if out, err := goBuild(ctx, *bin); err != nil {
			fmt.Fprintf(stderr, "cmkd-chaos: go build ./cmd/cmkd: %v\n%s", err, out)
			return 1
		}
	}
	rep := &chaos.Report{Command: command(args), Date: time.Now().UTC(),
		Machine: fmt.Sprintf("%d CPUs, %s/%s, %s", runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, runtime.Version())}
	failed := false
	for _, b := range strings.Split(*backends, ",") {
		cfg := chaos.Config{Seed: *seed, Backend: strings.TrimSpace(b), Bin: *bin, Kills: *kills, Smoke: *smoke,
			Dir: filepath.Join(*dir, strings.TrimSpace(b)), Progress: stdout}
		res, err := chaos.Run(ctx, cfg)
		if err != nil {
			fmt.Fprintf(stderr, "cmkd-chaos: %s: the harness could not run: %v\n(seed %d; everything it wrote is in %s)\n", b, err, *seed, cfg.Dir)
			return 1
		}
		rep.Runs = append(rep.Runs, res)
		fmt.Fprintln(stdout, res.Summary())
		failed = failed || res.Failed()
	}
	if err := writeReports(rep, *md, *js); err != nil {
		fmt.Fprintln(stderr, "cmkd-chaos:", err)
		return 1
	}
	if failed {
		fmt.Fprintf(stderr, "cmkd-chaos: invariants broke (above); replay with make chaos SEED=%d; logs and stores in %s\n", *seed, *dir)
		return 1
	}
	fmt.Fprintf(stdout, "cmkd-chaos: every invariant held (seed %d)\n", *seed)
	return 0
}

func writeReports(rep *chaos.Report, md, js string) error {
	if md != "" {
		f, err := os.Create(md) // #nosec G304 -- the path the operator gave
		if err != nil {
			return err
		}
		if err := errors.Join(rep.WriteMarkdown(f), f.Close()); err != nil {
			return err
		}
	}
	if js != "" {
		return rep.WriteJSON(js)
	}
	return nil
}

func goBuild(ctx context.Context, out string) ([]byte, error) {
	cmd := execCommand(ctx, "go", "build", "-o", out, "./cmd/cmkd")
	return cmd.CombinedOutput()
}

// command is how the run was asked for, for the report.
func command(args []string) string {
	for _, a := range args {
		if strings.HasPrefix(a, "--smoke") || strings.HasPrefix(a, "-smoke") {
			return "cmkd-chaos " + strings.Join(args, " ")
		}
	}
	return "make chaos"
}
