package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

func runTenant(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	sub := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"add": tenantAdd, "list": tenantList, "show": tenantShow, "remove": tenantRemove, "set-key": tenantSetKey,
		"destroy": tenantDestroy,
	}
	return dispatch("tenant", "add|list|show|set-key|remove|destroy", sub, ctx, argv, stdout, stderr)
}

// dispatch runs the subcommand named by argv[0].
func dispatch(name, names string, sub map[string]func(context.Context, []string, io.Writer, io.Writer) error,
	ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	if len(argv) == 0 || argv[0] == "-h" || argv[0] == "--help" {
		fmt.Fprintf(stderr, "usage: cmkd %s %s [flags]   (cmkd %s <sub> --help for flags)\n", name, names, name)
		if len(argv) == 0 {
			return usagef("%s needs a subcommand: %s", name, names)
		}
		return errHelp
	}
	fn, ok := sub[argv[0]]
	if !ok {
		return usagef("%s: unknown subcommand %q (want %s)", name, argv[0], names)
	}
	return fn(ctx, argv[1:], stdout, stderr)
}

type tenantView struct {
	ID  string     `json:"id"`
	Key cmkd.KeyID `json:"key"`
	// PlatformKey is the platform layer's key; Layers names the layers.
	PlatformKey cmkd.KeyID     `json:"platform_key"`
	Layers      []string       `json:"layers"`
	Change      *changeView    `json:"change,omitempty"`
	State       string         `json:"state"`
	Reason      string         `json:"reason,omitempty"`
	Since       *time.Time     `json:"since,omitempty"`
	Version     string         `json:"version,omitempty"`
	DEKs        map[string]int `json:"deks_by_version,omitempty"`
	KeyDEKs     map[string]int `json:"key_deks_by_version,omitempty"`
	CreatedAt   time.Time      `json:"created_at"`
}

// changeView is a key change under way.
type changeView struct {
	From  cmkd.KeyID `json:"from"`
	Since time.Time  `json:"since"`
}

func viewOf(t store.Tenant) tenantView {
	v := tenantView{ID: t.ID, Key: t.Key, PlatformKey: t.PlatformKey, State: t.State, Reason: t.SealReason,
		Version: t.KeyVersion, CreatedAt: t.CreatedAt, Layers: []string{}}
	for _, l := range t.Layers() {
		v.Layers = append(v.Layers, l.Layer)
	}
	if c := t.Change; c != nil {
		v.Change = &changeView{From: c.From, Since: c.Since}
	}
	if t.Sealed() {
		since := t.SealedAt
		v.Since = &since
	}
	return v
}

func tenantAdd(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("tenant add", "tenant add ID [--key KEY_URL] [--allow-purgeable]", stderr)
	c.register(fs)
	keyFlag := fs.String("key", "", "the tenant's own key (Key Vault or Managed HSM key URL, without a version): "+
		"a second layer over the platform key; without it, the platform layer alone")
	allowPurgeable := fs.Bool("allow-purgeable", false, "accept a key whose vault lacks purge protection (test vaults only)")
	if err := parse(fs, argv); err != nil {
		return err
	}
	if err := args(fs, 1, "ID"); err != nil {
		return err
	}
	if err := cmkd.ValidateTenantID(fs.Arg(0)); err != nil {
		return err
	}
	key, err := parseKeyFlag("tenant add", *keyFlag)
	if err != nil {
		return err
	}
	d, err := c.open(ctx, stderr, false)
	if err != nil {
		return err
	}
	defer d.Close()
	if key.IsZero() && d.store.PlatformKey().IsZero() {
		return usagef("tenant add: --key is required: no platform key is configured (keyvault.platform_key), " +
			"so the tenant's own key would be its only layer (e.g. --key https://myvault.vault.azure.net/keys/cmk)")
	}
	if err := onboard(ctx, d, key, *allowPurgeable, stderr); err != nil {
		return err
	}
	t, err := d.store.AddTenant(ctx, fs.Arg(0), key)
	if err != nil {
		return withPolicyHint(err)
	}
	return c.emit(stdout, viewOf(t), func() string {
		return fmt.Sprintf("tenant %s added; its data is encrypted under %s\n", t.ID, layerNames(t))
	})
}

// parseKeyFlag parses a --key flag; empty is no key.
func parseKeyFlag(cmd, s string) (cmkd.KeyID, error) {
	if s == "" {
		return cmkd.KeyID{}, nil
	}
	key, err := cmkd.ParseKeyID(s)
	if err != nil {
		return key, fmt.Errorf("%s --key: %w (e.g. https://myvault.vault.azure.net/keys/cmk)", cmd, err)
	}
	if key.Version != "" {
		return key, usagef("%s --key: give the key without a version (%s): cmkd follows its versions", cmd, key.Versionless())
	}
	return key, nil
}

// layerNames says which keys a tenant's data is under.
func layerNames(t store.Tenant) string {
	var parts []string
	for _, l := range t.Layers() {
		parts = append(parts, fmt.Sprintf("the %s key %s", l.Layer, l.Key))
	}
	return strings.Join(parts, " and ")
}

func tenantList(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("tenant list", "tenant list", stderr)
	c.register(fs)
	return storeCommand(ctx, &c, fs, argv, 0, "no arguments", stderr, func(d *deps) error {
		ts, err := d.store.Tenants(ctx)
		if err != nil {
			return err
		}
		views := make([]tenantView, 0, len(ts))
		for _, t := range ts {
			views = append(views, viewOf(t))
		}
		return c.emit(stdout, views, func() string {
			var b strings.Builder
			tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "TENANT\tSTATE\tREASON\tKEY\tVERSION")
			for _, v := range views {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.ID, v.State, dash(v.Reason), keyOrPlatform(v.Key), dash(v.Version))
			}
			_ = tw.Flush() // into a strings.Builder, which cannot fail
			return b.String()
		})
	})
}

func tenantShow(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("tenant show", "tenant show ID", stderr)
	c.register(fs)
	return storeCommand(ctx, &c, fs, argv, 1, "ID", stderr, func(d *deps) error {
		t, err := d.store.Tenant(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		v := viewOf(t)
		if v.DEKs, err = tenantDEKCounts(ctx, d.store, t.ID); err != nil {
			return err
		}
		if !t.Key.IsZero() {
			if v.KeyDEKs, err = d.store.VersionCounts(ctx, t.Key); err != nil {
				return err
			}
		}
		return c.emit(stdout, v, func() string {
			var b strings.Builder
			fmt.Fprintf(&b, "tenant   %s\nstate    %s", v.ID, v.State)
			if v.Since != nil {
				fmt.Fprintf(&b, " (%s since %s)", v.Reason, v.Since.Format(time.RFC3339))
			}
			fmt.Fprintf(&b, "\nkey      %s\nversion  %s\nplatform %s\nlayers   %s\n", keyOrPlatform(v.Key), dash(v.Version),
				dash(v.PlatformKey.String()), strings.Join(v.Layers, ", "))
			if v.Change != nil {
				fmt.Fprintf(&b, "change   from %s since %s, under way\n", keyOrPlatform(v.Change.From), v.Change.Since.Format(time.RFC3339))
			}
			writeCounts(&b, "DEKs of this tenant, by key version:", v.DEKs)
			writeCounts(&b, "DEKs of all tenants on this key, by version:", v.KeyDEKs)
			return b.String()
		})
	})
}

// maxShownDEKs bounds the DEKs tenant show reads to count by version; they
// are wrapped only, but a tenant may have many.
const maxShownDEKs = 100_000

// tenantDEKCounts counts the tenant's DEKs by the key version wrapping them.
// The store counts per key only, so this reads the tenant's wrapped DEKs.
func tenantDEKCounts(ctx context.Context, st *store.Store, tenant string) (map[string]int, error) {
	deks, err := st.Backend().TenantDEKs(ctx, tenant, "", maxShownDEKs)
	if err != nil {
		return nil, fmt.Errorf("deks of %s: %w", tenant, err)
	}
	n := make(map[string]int)
	for _, k := range deks {
		if k.Layer == store.LayerPlatform {
			n["platform "+k.Version()]++
			continue
		}
		n[k.Version()]++
	}
	return n, nil
}

func writeCounts(b *strings.Builder, title string, counts map[string]int) {
	b.WriteString(title + "\n")
	versions := make([]string, 0, len(counts))
	for ver := range counts {
		versions = append(versions, ver)
	}
	sort.Strings(versions)
	for _, ver := range versions {
		fmt.Fprintf(b, "  %s  %d\n", ver, counts[ver])
	}
	if len(counts) == 0 {
		b.WriteString("  none\n")
	}
}

func tenantRemove(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var c common
	fs := newFlags("tenant remove", "tenant remove ID [--force]", stderr)
	c.register(fs)
	force := fs.Bool("force", false, "remove even while the tenant has records (they are deleted)")
	return storeCommand(ctx, &c, fs, argv, 1, "ID", stderr, func(d *deps) error {
		err := d.store.RemoveTenant(ctx, fs.Arg(0), *force)
		if errors.Is(err, store.ErrNotEmpty) {
			return fmt.Errorf("%w (cmkd ls %s shows them; --force deletes them with the tenant)", err, fs.Arg(0))
		}
		if err != nil {
			return err
		}
		return c.emit(stdout, map[string]string{"removed": fs.Arg(0)}, func() string {
			return "tenant " + fs.Arg(0) + " removed\n"
		})
	})
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
