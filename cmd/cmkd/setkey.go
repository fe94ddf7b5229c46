package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// tenantSetKey switches a tenant's own key on, to another key or vault, or
// off, in place: reads and writes go on throughout. It records the change
// (key.change.started), then moves the DEKs itself, showing progress; if it
// is stopped, the worker resumes the change, and running set-key again
// waits for it.
func tenantSetKey(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("tenant set-key", "tenant set-key ID (--key KEY_URL | --platform-only --yes) [--allow-purgeable] [--no-wait]", stderr)
	c.register(fs)
	keyFlag := fs.String("key", "", "the tenant's new key (Key Vault or Managed HSM key URL, without a version)")
	platformOnly := fs.Bool("platform-only", false, "remove the tenant's own key: its data stays under the platform key alone")
	yes := fs.Bool("yes", false, "confirm --platform-only")
	allowPurgeable := fs.Bool("allow-purgeable", false, "accept a key whose vault lacks purge protection (test vaults only)")
	noWait := fs.Bool("no-wait", false, "record the change and return; the worker moves the DEKs")
	if err := parse(fs, argv); err != nil {
		return err
	}
	if err := args(fs, 1, "ID"); err != nil {
		return err
	}
	switch {
	case (*keyFlag == "") == !*platformOnly:
		return usagef("tenant set-key: give --key KEY_URL or --platform-only")
	case *platformOnly && !*yes:
		return usagef("tenant set-key --platform-only: the customer's key will no longer protect this tenant's data; add --yes to confirm")
	}
	key, err := parseKeyFlag("tenant set-key", *keyFlag)
	if err != nil {
		return err
	}
	d, err := c.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := onboard(ctx, d, key, *allowPurgeable, stderr); err != nil {
		return err
	}
	t, err := d.store.SetKey(ctx, fs.Arg(0), key, cmkd.StatusEvent{Cause: "cli"})
	if err != nil {
		return withPolicyHint(err)
	}
	if t.Change != nil && !*noWait {
		if err := carryOut(ctx, d, t.ID, stderr); err != nil {
			return err
		}
		if t, err = d.store.Tenant(ctx, t.ID); err != nil {
			return err
		}
	}
	return c.emit(stdout, viewOf(t), func() string {
		if t.Change != nil {
			return fmt.Sprintf("tenant %s: key change to %s recorded; the worker moves its DEKs (cmkd tenant show %s)\n",
				t.ID, keyOrPlatform(t.Key), t.ID)
		}
		return fmt.Sprintf("tenant %s: its data is encrypted under %s\n", t.ID, layerNames(t))
	})
}

// carryOut moves the tenant's DEKs into its new layers, with progress on
// stderr, or waits while another process (the worker) does.
func carryOut(ctx context.Context, d *deps, tenant string, stderr io.Writer) error {
	holder := fmt.Sprintf("cli-%d", os.Getpid())
	last := time.Now()
	progress := func(st store.ChangeStats) {
		if time.Since(last) >= time.Second {
			fmt.Fprintf(stderr, "  %d DEKs looked at, %d moved\n", st.Seen, st.Moved)
			last = time.Now()
		}
	}
	for {
		st, err := d.store.CarryOutKeyChange(ctx, tenant, holder, 30*time.Second, progress)
		if err == nil {
			fmt.Fprintf(stderr, "key change of %s completed: %d DEKs, %d moved\n", tenant, st.Seen, st.Moved)
			return nil
		}
		if !errors.Is(err, store.ErrLeaseHeld) {
			return fmt.Errorf("%w (the change stays recorded: the worker resumes it, or run set-key again)", err)
		}
		t, err := d.store.Tenant(ctx, tenant)
		if err != nil {
			return err
		}
		if t.Change == nil {
			return nil
		}
		fmt.Fprintf(stderr, "another process is moving %s's DEKs; waiting\n", tenant)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

// onboard checks a customer key as Azure services do before they accept
// one; zero (no key of the tenant's own) needs no check. A refusal says
// what is wrong and the fix, and exits with its own code (exitOf).
func onboard(ctx context.Context, d *deps, key cmkd.KeyID, allowPurgeable bool, stderr io.Writer) error {
	if key.IsZero() {
		return nil
	}
	o, err := d.kek.Onboard(ctx, key, kek.OnboardOptions{AllowPurgeable: allowPurgeable})
	if err != nil {
		return withPolicyHint(err)
	}
	for _, w := range o.Warnings {
		fmt.Fprintf(stderr, "cmkd: warning: %s: %s\n", key, w)
	}
	return nil
}

// keyOrPlatform names a tenant's own key; none means the platform layer
// alone.
func keyOrPlatform(k cmkd.KeyID) string {
	if k.IsZero() {
		return "(platform key only)"
	}
	return k.String()
}

// Exit codes of onboarding refusals: a script adding tenants can tell a key
// the customer must fix from one cmkd may not reach.
const (
	exitKeyType      = 10 // not RSA 2048/3072/4096, RSA-HSM or oct-HSM
	exitKeyOps       = 11 // wrapKey or unwrapKey missing from key_ops
	exitKeyDisabled  = 12
	exitKeyNotYet    = 13 // nbf in the future
	exitKeyExpired   = 14
	exitPurgeable    = 15 // no purge protection (see --allow-purgeable)
	exitKeyAccess    = 16 // cmkd's identity may not use the key or reach the vault
	exitKeyUnusable  = 17 // the vault refused, or the round trip failed
	exitVaultPolicy  = 18 // the vault is not in keyvault.vaults / dns_suffixes
	exitVaultOffline = 19 // the vault did not answer: try again
)

var onboardExits = map[string]int{
	kek.CodeKeyType: exitKeyType, kek.CodeKeySize: exitKeyType, kek.CodeKeyOps: exitKeyOps,
	kek.CodeKeyDisabled: exitKeyDisabled, kek.CodeKeyNotYetValid: exitKeyNotYet, kek.CodeKeyExpired: exitKeyExpired,
	kek.CodePurgeProtection: exitPurgeable,
	kek.CodeAccessDenied:    exitKeyAccess, kek.CodeCredentialRefused: exitKeyAccess, kek.CodeNetworkDenied: exitKeyAccess,
	kek.CodeKeyNotFound: exitNotFound, kek.CodeKeyDeleted: exitNotFound,
	kek.CodeVaultRefused: exitKeyUnusable, kek.CodeRoundTrip: exitKeyUnusable,
	kek.CodeVaultNotAllowed: exitVaultPolicy, kek.CodeVaultUnreachable: exitVaultOffline,
}

// onboardExit is the exit code of an onboarding refusal, if err is one.
func onboardExit(err error) (int, bool) {
	var oe *kek.OnboardError
	if !errors.As(err, &oe) {
		return 0, false
	}
	code, ok := onboardExits[oe.Code]
	if !ok {
		code = exitError
	}
	return code, true
}
