package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd/kek"
)

// vaultCmd is what every vault subcommand needs: flags, config, an azkeys
// client for the vault.
type vaultCmd struct {
	common
	vault   string
	version string
	key     string // the NAME argument
	cfg     *Config
	client  *azkeys.Client
	http    *http.Client
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
	v.key = fs.Arg(0)
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
	return v.connect()
}

func (v *vaultCmd) connect() error {
	d := &deps{cfg: v.cfg}
	if err := d.openKEK(); err != nil {
		return err
	}
	pool, err := loadCA(v.cfg.KeyVault.CAFile)
	if err != nil {
		return fmt.Errorf("keyvault.ca_file: %w", err)
	}
	v.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsTrusting(pool)}}
	v.client, err = azkeys.NewClient(v.vault, d.cred, &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: v.http},
		DisableChallengeResourceVerification: v.cfg.KeyVault.Emulator,
	})
	return err
}

// keyView is what vault commands print about a key.
type keyView struct {
	KID     string     `json:"kid"`
	Kty     string     `json:"kty,omitempty"`
	Enabled bool       `json:"enabled"`
	Expires *time.Time `json:"expires,omitempty"`
}

func (v *vaultCmd) print(w io.Writer, verb string, b azkeys.KeyBundle) error {
	kv := keyView{KID: string(*b.Key.KID)}
	if b.Key.Kty != nil {
		kv.Kty = string(*b.Key.Kty)
	}
	if b.Attributes != nil {
		kv.Enabled = b.Attributes.Enabled != nil && *b.Attributes.Enabled
		kv.Expires = b.Attributes.Expires
	}
	return v.emit(w, kv, func() string { return fmt.Sprintf("%s %s (enabled=%v)\n", verb, kv.KID, kv.Enabled) })
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
	p := azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyType(kty))}
	switch {
	case size != 0:
		p.KeySize = to.Ptr(int32(size))
	case kty == "oct-HSM":
		p.KeySize = to.Ptr[int32](256)
	}
	resp, err := v.client.CreateKey(ctx, v.key, p, nil)
	if err != nil {
		return vaultErr("create-key", v.key, err)
	}
	return v.print(stdout, "created", resp.KeyBundle)
}

func vaultRotate(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("rotate", "rotate NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	resp, err := v.client.RotateKey(ctx, v.key, nil)
	if err != nil {
		return vaultErr("rotate", v.key, err)
	}
	return v.print(stdout, "rotated: new version", resp.KeyBundle)
}

func vaultEnable(on bool) func(context.Context, []string, io.Writer, io.Writer) error {
	verb := map[bool]string{true: "enable", false: "disable"}[on]
	return func(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
		var v vaultCmd
		if err := v.parse(verb, verb+" NAME [--version V]", argv, stderr, true, nil); err != nil {
			return err
		}
		resp, err := v.client.UpdateKey(ctx, v.key, v.version,
			azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(on)}}, nil)
		if err != nil {
			return vaultErr(verb, v.key, err)
		}
		return v.print(stdout, verb+"d", resp.KeyBundle)
	}
}

func vaultDelete(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("delete", "delete NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	resp, err := v.client.DeleteKey(ctx, v.key, nil)
	if err != nil {
		return vaultErr("delete", v.key, err)
	}
	return v.emit(stdout, map[string]string{"deleted": string(*resp.Key.KID)}, func() string {
		return "deleted (soft) " + string(*resp.Key.KID) + "; cmkd vault recover " + v.key + " undoes it\n"
	})
}

func vaultRecover(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("recover", "recover NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	resp, err := v.client.RecoverDeletedKey(ctx, v.key, nil)
	if err != nil {
		return vaultErr("recover", v.key, err)
	}
	return v.print(stdout, "recovered", resp.KeyBundle)
}

func vaultPurge(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("purge", "purge NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	if _, err := v.client.PurgeDeletedKey(ctx, v.key, nil); err != nil {
		return vaultErr("purge", v.key, err)
	}
	return v.emit(stdout, map[string]string{"purged": v.key}, func() string {
		return "purged " + v.key + ": its key material is gone for good\n"
	})
}

func vaultShow(ctx context.Context, argv []string, stdout, stderr io.Writer) error {
	var v vaultCmd
	if err := v.parse("show", "show NAME", argv, stderr, false, nil); err != nil {
		return err
	}
	var views []keyView
	pager := v.client.NewListKeyPropertiesVersionsPager(v.key, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return vaultErr("show", v.key, err)
		}
		for _, p := range page.Value {
			kv := keyView{KID: string(*p.KID)}
			if p.Attributes != nil {
				kv.Enabled = p.Attributes.Enabled != nil && *p.Attributes.Enabled
				kv.Expires = p.Attributes.Expires
			}
			views = append(views, kv)
		}
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
		body, _ := json.Marshal(map[string]bool{"revoked": revoke})
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, v.vault+"/_emulator/access", bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+v.cfg.KeyVault.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := v.http.Do(req)
		if err != nil {
			return vaultErr(verb, v.key, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return fmt.Errorf("%s: emulator answered %s: %s", verb, resp.Status, msg)
		}
		return v.emit(stdout, map[string]bool{"revoked": revoke}, func() string {
			return "access " + map[bool]string{true: "revoked", false: "granted"}[revoke] + " at " + v.vault + "\n"
		})
	}
}

// vaultErr turns an azkeys failure into one line that says what to do: the
// SDK's own message is a multi-line request dump. A 404 wraps
// kek.ErrNotFound so the command exits 4.
func vaultErr(verb, name string, err error) error {
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		return fmt.Errorf("vault %s %s: %w (is the vault URL right and reachable?)", verb, name, err)
	}
	what := fmt.Sprintf("Key Vault answered %d %s", re.StatusCode, re.ErrorCode)
	switch {
	case re.StatusCode == http.StatusNotFound && (verb == "recover" || verb == "purge"):
		return fmt.Errorf("vault %s %s: %w: %s (no deleted key of that name: never deleted, or purged)",
			verb, name, kek.ErrNotFound, what)
	case re.StatusCode == http.StatusNotFound:
		return fmt.Errorf("vault %s %s: %w: %s (check the name and --vault; a deleted key must be recovered first)",
			verb, name, kek.ErrNotFound, what)
	case re.StatusCode == http.StatusUnauthorized, re.StatusCode == http.StatusForbidden:
		return fmt.Errorf("vault %s %s: %w: %s (check keyvault.credential and the identity's Key Vault role)",
			verb, name, kek.ErrAccessDenied, what)
	case re.StatusCode == http.StatusConflict:
		return fmt.Errorf("vault %s %s: %s (a deleted key of that name exists: recover or purge it first)", verb, name, what)
	default:
		return fmt.Errorf("vault %s %s: %s", verb, name, what)
	}
}
