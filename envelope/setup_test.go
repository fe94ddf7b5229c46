package envelope_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/config"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/kek"
)

const vaultToken = "envelope-example-token"

// deployment is what an operator sets up before an application opens the
// store: a Key Vault (here the emulator, in process), a tenant's key in it,
// cmkd's config file, and the tenant added as `cmkd tenant add` does.
type deployment struct {
	dir  string
	kv   *keyvault.Server
	cfg  *config.Config
	path string // the config file
	key  cmkd.KeyID
}

// deploy sets up tenant "acme" with its own RSA key in an emulated Key
// Vault, its data in a SQLite file in a temporary directory. close undoes it.
func deploy() (*deployment, error) {
	dir, err := os.MkdirTemp("", "cmkd-envelope-")
	if err != nil {
		return nil, err
	}
	d := &deployment{dir: dir}
	if err := d.start(); err != nil {
		d.close()
		return nil, err
	}
	return d, nil
}

func (d *deployment) start() error {
	ctx := context.Background()
	ca := filepath.Join(d.dir, "kv-ca.pem")
	kv, err := keyvault.Start(keyvault.Config{Token: vaultToken, CAFile: ca, ThrottleLimit: -1, PurgeProtection: true})
	if err != nil {
		return err
	}
	d.kv = kv
	cred, err := kek.NewCredential(kek.CredentialConfig{Kind: kek.CredentialStatic, Token: vaultToken})
	if err != nil {
		return err
	}
	admin, err := kv.Client(cred, azpolicy.RetryOptions{})
	if err != nil {
		return err
	}
	if _, err := admin.CreateKey(ctx, "acme-key", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)}, nil); err != nil {
		return fmt.Errorf("create key: %w", err)
	}
	if d.key, err = cmkd.ParseKeyID(kv.URL() + "/keys/acme-key"); err != nil {
		return err
	}
	d.cfg = &config.Config{
		Store: config.StoreConfig{Driver: "sqlite", DSN: filepath.Join(d.dir, "cmkd.db")},
		KeyVault: config.KVConfig{Credential: "static", Token: vaultToken, CAFile: ca, Emulator: true,
			Vaults: []string{kv.URL()}},
	}
	d.path = filepath.Join(d.dir, "cmkd.yaml")
	if err := config.Write(d.path, d.cfg); err != nil {
		return err
	}
	// `cmkd tenant add acme --key …/keys/acme-key`, in short.
	k, err := config.OpenKEK(d.cfg, nil, nil)
	if err != nil {
		return err
	}
	st, err := config.OpenStore(ctx, d.cfg, k, nil)
	if err != nil {
		return err
	}
	if _, err := st.AddTenant(ctx, "acme", d.key); err != nil {
		st.Close()
		return fmt.Errorf("add tenant: %w", err)
	}
	return st.Close()
}

func (d *deployment) close() {
	if d.kv != nil {
		d.kv.Close()
	}
	os.RemoveAll(d.dir)
}

// exampleConfig is the config file of a deployment with tenant "acme", for
// the examples; done removes it all.
func exampleConfig() (path string, done func()) {
	d, err := deploy()
	if err != nil {
		panic(err)
	}
	return d.path, d.close
}
