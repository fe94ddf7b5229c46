package main

import (
	"context"
	"fmt"
	"io"

	"github.com/cmkd-io/cmkd"
)

// tenantDestroy crypto-shreds a tenant: every DEK is deleted, with its
// records and the tenant, so that everything ever encrypted for it — the
// records cmkd holds and every ciphertext the application keeps elsewhere —
// is unrecoverable. It is how an erasure request is honoured.
func tenantDestroy(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("tenant destroy", "tenant destroy ID --yes", stderr)
	c.register(fs)
	yes := fs.Bool("yes", false, "confirm: every DEK of the tenant is deleted and its data can never be read again")
	if err := parse(fs, argv); err != nil {
		return err
	}
	if err := args(fs, 1, "ID"); err != nil {
		return err
	}
	if !*yes {
		return usagef("tenant destroy: every DEK of %s is deleted and its data can never be read again; add --yes to confirm", fs.Arg(0))
	}
	d, err := c.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer d.Close()
	id := fs.Arg(0)
	if err := d.store.DestroyTenant(ctx, id, cmkd.StatusEvent{Cause: "cli"}); err != nil {
		return err
	}
	return c.emit(stdout, map[string]string{"tenant": id, "state": "destroyed"}, func() string {
		return fmt.Sprintf("tenant %s destroyed: its DEKs are deleted; nothing encrypted for it can be read again\n", id)
	})
}
