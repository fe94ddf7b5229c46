package kek

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// Credential kinds for CredentialConfig.Kind.
const (
	CredentialDefault  = "default"  // azidentity.DefaultAzureCredential
	CredentialWorkload = "workload" // AKS workload identity (federated token file)
	CredentialManaged  = "managed"  // managed identity; ClientID picks a user-assigned one
	CredentialStatic   = "static"   // a fixed bearer token, for the emulator
)

// CredentialConfig says how cmkd authenticates to Key Vault.
type CredentialConfig struct {
	Kind      string
	ClientID  string
	TenantID  string
	TokenFile string // workload: the federated token file; empty reads AZURE_FEDERATED_TOKEN_FILE
	Token     string // static only
}

// NewCredential builds the credential c describes.
func NewCredential(c CredentialConfig) (azcore.TokenCredential, error) {
	switch c.Kind {
	case CredentialDefault, "":
		return azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{TenantID: c.TenantID})
	case CredentialWorkload:
		return azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			ClientID: c.ClientID, TenantID: c.TenantID, TokenFilePath: c.TokenFile,
		})
	case CredentialManaged:
		o := &azidentity.ManagedIdentityCredentialOptions{}
		if c.ClientID != "" {
			o.ID = azidentity.ClientID(c.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(o)
	case CredentialStatic:
		if c.Token == "" {
			return nil, errors.New("credential: Token is required for kind static")
		}
		return StaticToken(c.Token), nil
	default:
		return nil, fmt.Errorf("credential: Kind %q is not one of default, workload, managed, static", c.Kind)
	}
}

// StaticToken is a credential that always presents token; meant for the
// emulator, which accepts any bearer (or one configured token).
func StaticToken(token string) azcore.TokenCredential { return staticToken(token) }

type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(24 * time.Hour)}, nil
}
