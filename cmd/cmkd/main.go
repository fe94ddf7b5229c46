// Command cmkd is the customer-managed-key lifecycle worker and its CLI.
//
// Each subcommand lives in its own file and has the shape
// func(ctx, args, stdout, stderr) error; main maps errors to exit codes.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// Exit codes are part of cmkd's contract (README, "Five minutes with cmkd"):
// scripts branch on them.
const (
	exitOK       = 0
	exitError    = 1
	exitUsage    = 2
	exitSealed   = 3
	exitNotFound = 4
)

type command struct {
	name  string
	short string
	run   func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"dev", "run everything on loopback, no cloud: NATS, emulators, SQLite, the worker", runDev},
		{"run", "run the worker (production) from a config file", runRun},
		{"migrate", "bring the store's schema to this binary's version (for store.migrate: false)", runMigrate},
		{"tenant", "add, list, show or remove tenants", runTenant},
		{"put", "encrypt and store a record: put TENANT KEY (value on stdin)", runPut},
		{"get", "read a record: get TENANT KEY", runGet},
		{"del", "delete a record: del TENANT KEY", runDel},
		{"ls", "list a tenant's record keys: ls TENANT", runLs},
		{"vault", "manage Key Vault keys: create-key, rotate, disable, enable, delete, recover, purge, show", runVault},
		{"rewrap", "re-wrap a key's DEKs now, or --dry-run to see what would move", runRewrap},
		{"keys", "list the keys in use: tenants, state, last probe, probe interval, rewrap progress", runKeys},
		{"audit", "read the status stream: audit tail", runAudit},
		{"emulator", "start the Key Vault and Event Grid emulators alone, on loopback", runEmulator},
		{"version", "print the version, VCS revision and Go version the binary was built from", runVersion},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return exitCode(c.run(ctx, args[1:], stdout, stderr), stderr)
		}
	}
	fmt.Fprintf(stderr, "cmkd: unknown command %q\n\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: cmkd <command> [flags]   (cmkd <command> --help for its flags)")
	fmt.Fprintln(w, "\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-10s %s\n", c.name, c.short)
	}
}

// usageError is returned for bad flags or arguments; it maps to exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, a ...any) error { return &usageError{fmt.Sprintf(format, a...)} }

func isOnboardRefusal(err error) bool { _, ok := onboardExit(err); return ok }

func exitCode(err error, stderr io.Writer) int {
	var ue *usageError
	var se *store.SealedError
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, errHelp):
		return exitOK
	case errors.As(err, &ue):
		fmt.Fprintln(stderr, "cmkd:", err)
		return exitUsage
	case isOnboardRefusal(err):
		fmt.Fprintln(stderr, "cmkd:", err)
		code, _ := onboardExit(err)
		return code
	case errors.As(err, &se):
		whose := "its key is"
		if cmkd.IsPlatformReason(se.Reason) {
			whose = "the platform key (the operator's, keyvault.platform_key) is"
		}
		fmt.Fprintf(stderr, "cmkd: tenant %s is sealed (%s) since %s: %s not usable in Key Vault; "+
			"cmkd unseals it by itself once the key works again\n", se.Tenant, se.Reason, se.Since.Format(time.RFC3339), whose)
		return exitSealed
	case errors.Is(err, store.ErrNotFound), errors.Is(err, kek.ErrNotFound):
		fmt.Fprintln(stderr, "cmkd:", err)
		return exitNotFound
	default:
		fmt.Fprintln(stderr, "cmkd:", err)
		return exitError
	}
}
