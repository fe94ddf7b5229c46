package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/kek"
)

// vaultCmd is what every vault subcommand needs: flags, config, and the kek
// client — the one door to Key Vault — for the vault.
type vaultCmd struct {
	common
	vault   string
	version string
	name    string // the NAME argument
	cfg     *Config
	kek     *kek.Client
}

func runVault(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	sub := map[string]func(context.Context, []string, io.Writer, io.Writer) error{
		"create-key": vaultCreate, "rotate": vaultRotate, "disable": vaultEnable(false), "enable": vaultEnable(true),
		"delete": vaultDelete, "recover": vaultRecover, "purge": vaultPurge, "show": vaultShow,
		"revoke": vaultAccess(true), "grant": vaultAccess(false),
	}
	return dispatch("vault", "create-key|rotate|disable|enable|delete|recover|purge|show|revoke|grant", sub, ctx, argv, stdout, stderr)
}

func (v *vaultCmd) parse(name, synopsis string, argv []string, stderr io.Writer, withVersion bool, extra func(*flag.FlagSet)) error {
	fs := newFlags("vault "+name, "vault "+synopsis, stderr)
	v.register(fs)
	fs.StringVar(&v.vault, "vault", "", "vault URL (default: the dev vault of the config)")
	if withVersion {
		fs.StringVar(&v.version, "version", "", "key version (default: the latest)")
	}
	if extra != nil {
		extra(fs)
	}
	if err := parse(fs, argv); err != nil {
		return err
	}
	want := 1
	if name == "revoke" || name == "grant" {
		want = 0
	}
	if err := args(fs, want, strings.Repeat("NAME", want)); err != nil {
		return err
	}
	v.name = fs.Arg(0)
	cfg, err := loadConfig(configPath(v.config))
	if err != nil {
		return err
	}
	v.cfg = cfg
	if v.vault == "" {
		v.vault = cfg.Dev.KeyVault
	}
	if v.vault == "" {
		return usagef("vault %s: --vault is required (no dev vault in the config)", name)
	}
	d := &deps{cfg: cfg}
	if err := d.openKEK(); err != nil {
		return err
	}
	v.kek = d.kek
	return nil
}

// key is the key NAME names in the vault, at --version if given.
func (v *vaultCmd) key() (cmkd.KeyID, error) {
	s := v.vault + "/keys/" + v.name
	if v.version != "" {
		s += "/" + v.version
	}
	k, err := cmkd.ParseKeyID(s)
	if err != nil {
		return cmkd.KeyID{}, usagef("vault: %v", err)
	}
	return k, nil
}

// keyView is what vault commands print about a key.
type keyView struct {
	KID     string     `json:"kid"`
	Kty     string     `json:"kty,omitempty"`
	Enabled bool       `json:"enabled"`
	Expires *time.Time `json:"expires,omitempty"`
}

func viewOfKey(info kek.KeyInfo) keyView {
	kv := keyView{KID: info.KID.String(), Kty: info.Kty, Enabled: info.Enabled}
	if !info.Expires.IsZero() {
		kv.Expires = &info.Expires
	}
	return kv
}

func (v *vaultCmd) print(w io.Writer, verb string, info kek.KeyInfo) error {
	kv := viewOfKey(info)
	return v.emit(w, kv, func() string { return fmt.Sprintf("%s %s (enabled=%v)\n", verb, kv.KID, kv.Enabled) })
}

// do runs one key operation on NAME and prints the key it reports.
func (v *vaultCmd) do(verb, printed string, w io.Writer, op func(cmkd.KeyID) (kek.KeyInfo, error)) error {
	key, err := v.key()
	if err != nil {
		return err
	}
	info, err := op(key)
	if err != nil {
		return vaultErr(verb, v.name, err)
	}
	return v.print(w, printed, info)
}

func vaultCreate(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	var kty string
	var size int
	err := v.parse("create-key", "create-key NAME [--kty RSA|RSA-HSM|oct-HSM] [--size N]", argv, stderr, false, func(fs *flag.FlagSet) {
		fs.StringVar(&kty, "kty", "RSA", "key type: RSA, RSA-HSM or oct-HSM")
		fs.IntVar(&size, "size", 0, "key size in bits (RSA 2048/3072/4096, oct-HSM 128/192/256; default 2048 / 256)")
	})
	if err != nil {
		return err
	}
	switch kty {
	case "RSA", "RSA-HSM", "oct-HSM":
	default: // EC keys cannot wrap, and software oct keys exist only in Managed HSM
		return usagef("vault create-key: --kty %q is not RSA, RSA-HSM or oct-HSM", kty)
	}
	if _, err := v.key(); err != nil {
		return err
	}
	info, err := v.kek.CreateKey(ctx, v.vault, v.name, kty, size)
	if err != nil {
		return vaultErr("create-key", v.name, err)
	}
	return v.print(stdout, "created", info)
}

func vaultRotate(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("rotate", "rotate NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	return v.do("rotate", "rotated: new version", stdout, func(k cmkd.KeyID) (kek.KeyInfo, error) { return v.kek.RotateKey(ctx, k) })
}

func vaultEnable(on bool) func(context.Context, []string, io.Writer, io.Writer) error {
	verb := map[bool]string{true: "enable", false: "disable"}[on]
	return func(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
		var v vaultCmd
		if err := v.parse(verb, verb+" NAME [--version V]", argv, stderr, true, nil); err != nil {
			return err
		}
		return v.do(verb, verb+"d", stdout, func(k cmkd.KeyID) (kek.KeyInfo, error) { return v.kek.SetEnabled(ctx, k, on) })
	}
}

func vaultDelete(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("delete", "delete NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	key, err := v.key()
	if err != nil {
		return err
	}
	info, err := v.kek.DeleteKey(ctx, key)
	if err != nil {
		return vaultErr("delete", v.name, err)
	}
	kid := info.KID.String()
	return v.emit(stdout, map[string]string{"deleted": kid}, func() string {
		return "deleted (soft) " + kid + "; cmkd vault recover " + v.name + " undoes it\n"
	})
}

func vaultRecover(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("recover", "recover NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	return v.do("recover", "recovered", stdout, func(k cmkd.KeyID) (kek.KeyInfo, error) { return v.kek.RecoverKey(ctx, k) })
}

func vaultPurge(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("purge", "purge NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	key, err := v.key()
	if err != nil {
		return err
	}
	if err := v.kek.PurgeKey(ctx, key); err != nil {
		return vaultErr("purge", v.name, err)
	}
	return v.emit(stdout, map[string]string{"purged": v.name}, func() string {
		return "purged " + v.name + ": its key material is gone for good\n"
	})
}

func vaultShow(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("show", "show NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	key, err := v.key()
	if err != nil {
		return err
	}
	versions, err := v.kek.Versions(ctx, key)
	if err != nil {
		return vaultErr("show", v.name, err)
	}
	views := make([]keyView, 0, len(versions))
	for _, ver := range versions {
		views = append(views, viewOfKey(kek.KeyInfo{KID: key.At(ver.Version), Enabled: ver.Enabled, Expires: ver.Expires}))
	}
	return v.emit(stdout, views, func() string {
		var b strings.Builder
		for _, kv := range views {
			fmt.Fprintf(&b, "%s  enabled=%v", kv.KID, kv.Enabled)
			if kv.Expires != nil {
				fmt.Fprintf(&b, "  expires=%s", kv.Expires.Format(time.RFC3339))
			}
			b.WriteByte('\n')
		}
		return b.String()
	})
}

// vaultAccess revokes or grants cmkd's access at the emulator (there is no
// such call against a real vault: there, change the role assignment).
func vaultAccess(revoke bool) func(context.Context, []string, io.Writer, io.Writer) error {
	verb := map[bool]string{true: "revoke", false: "grant"}[revoke]
	return func(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
		var v vaultCmd
		if err := v.parse(verb, verb+"   (emulator only)", argv, stderr, false, nil); err != nil {
			return err
		}
		if !v.cfg.KeyVault.Emulator {
			return fmt.Errorf("vault %s works on the emulator only; on Azure, change cmkd's role assignment", verb)
		}
		pool, err := loadCA(v.cfg.KeyVault.CAFile)
		if err != nil {
			return fmt.Errorf("keyvault.ca_file: %w", err)
		}
		remote := keyvault.Remote{URL: v.vault, Token: v.cfg.KeyVault.Token,
			HTTP: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsTrusting(pool)}}}
		if err := remote.SetAccess(ctx, revoke); err != nil {
			return fmt.Errorf("vault %s: %w (is cmkd dev running?)", verb, err)
		}
		return v.emit(stdout, map[string]bool{"revoked": revoke}, func() string {
			return "access " + map[bool]string{true: "revoked", false: "granted"}[revoke] + " at " + v.vault + "\n"
		})
	}
}

// vaultErr turns a Key Vault failure, classified by kek, into one line that
// says what to do. A missing key wraps kek.ErrNotFound so the command
// exits 4.
func vaultErr(verb, name string, err error) error {
	var ke *kek.Error
	if !errors.As(err, &ke) {
		return fmt.Errorf("vault %s %s: %w", verb, name, err)
	}
	what := fmt.Sprintf("Key Vault answered %d %s", ke.Status, ke.Code)
	switch {
	case ke.Status == 0:
		return fmt.Errorf("vault %s %s: %w (is the vault URL right and reachable?)", verb, name, err)
	case errors.Is(err, kek.ErrNotFound) && (verb == "recover" || verb == "purge"):
		return fmt.Errorf("vault %s %s: %w: %s (no deleted key of that name: never deleted, or purged)",
			verb, name, kek.ErrNotFound, what)
	case errors.Is(err, kek.ErrNotFound):
		return fmt.Errorf("vault %s %s: %w: %s (check the name and --vault; a deleted key must be recovered first)",
			verb, name, kek.ErrNotFound, what)
	case verb == "purge" && ke.Status == http.StatusForbidden && ke.Code == "Forbidden" && ke.Inner == "":
		return fmt.Errorf("vault purge %s: %s: the vault has purge protection: the deleted key is purged "+
			"when its retention ends, and until then it can only be recovered", name, what)
	case errors.Is(err, kek.ErrAccessDenied):
		return fmt.Errorf("vault %s %s: %w: %s (check keyvault.credential and the identity's Key Vault role)",
			verb, name, kek.ErrAccessDenied, what)
	case ke.Status == http.StatusConflict:
		return fmt.Errorf("vault %s %s: %s (a deleted key of that name exists: recover or purge it first)", verb, name, what)
	default:
		return fmt.Errorf("vault %s %s: %s", verb, name, what)
	}
}
