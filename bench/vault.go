package bench

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/kek"
)

// Vault is one Key Vault emulator of a scenario with several, holding an
// RSA-2048 key named KeyName.
type Vault struct {
	KV  *keyvault.Server
	AZ  *azkeys.Client // the customer's client: no retries, so 429s show
	Key cmkd.KeyID     // versionless
}

// StartVault starts an emulator named name, unthrottled, and creates its
// key. On error, what was started is closed.
func StartVault(ctx context.Context, name string, log *slog.Logger) (*Vault, error) {
	kv, err := keyvault.Start(keyvault.Config{ThrottleLimit: -1, VaultName: name, Logger: log})
	if err != nil {
		return nil, err
	}
	v := &Vault{KV: kv}
	if v.AZ, err = kv.Client(kek.StaticToken("bench"), policy.RetryOptions{MaxRetries: -1}); err != nil {
		kv.Close()
		return nil, err
	}
	resp, err := v.AZ.CreateKey(ctx, KeyName, azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048),
	}, nil)
	if err != nil {
		kv.Close()
		return nil, fmt.Errorf("create key in vault %s: %w", name, err)
	}
	id, err := cmkd.ParseKeyID(string(*resp.Key.KID))
	if err != nil {
		kv.Close()
		return nil, err
	}
	v.Key = id.Versionless()
	return v, nil
}
