package keyvault

import (
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// clientFromCAFile is the azkeys client a separate process builds: it knows
// the vault URL and trusts only the CA it reads from the file.
func clientFromCAFile(t *testing.T, url, caFile string) *azkeys.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	c, err := azkeys.NewClient(url, staticToken("token"), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			// No keep-alive: these clients outlive a restart of the
			// emulator, and a POST written on a connection the old server
			// closed fails with a broken pipe (Go retries only idempotent
			// requests, and these clients retry nothing).
			Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true}},
			Retry:     azpolicy.RetryOptions{MaxRetries: -1},
		},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// vaultView is everything a client can read from a vault.
type vaultView struct {
	Versions map[string][]azkeys.KeyBundle // every version of every live key, by kid
	Policies map[string]azkeys.KeyRotationPolicy
	Deleted  map[string]azkeys.DeletedKey
}

func readVault(t *testing.T, c *azkeys.Client) vaultView {
	t.Helper()
	ctx := t.Context()
	vw := vaultView{Versions: map[string][]azkeys.KeyBundle{}, Policies: map[string]azkeys.KeyRotationPolicy{}, Deleted: map[string]azkeys.DeletedKey{}}
	for keys := c.NewListKeyPropertiesPager(nil); keys.More(); {
		page, err := keys.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, kp := range page.Value {
			name := kp.KID.Name()
			vw.Versions[name] = readVersions(t, c, name)
			pol, err := c.GetKeyRotationPolicy(ctx, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			vw.Policies[name] = pol.KeyRotationPolicy
		}
	}
	for del := c.NewListDeletedKeyPropertiesPager(nil); del.More(); {
		page, err := del.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, dp := range page.Value {
			dk, err := c.GetDeletedKey(ctx, dp.KID.Name(), nil)
			if err != nil {
				t.Fatal(err)
			}
			vw.Deleted[dp.KID.Name()] = dk.DeletedKey
		}
	}
	return vw
}

func readVersions(t *testing.T, c *azkeys.Client, name string) []azkeys.KeyBundle {
	t.Helper()
	var out []azkeys.KeyBundle
	for vers := c.NewListKeyPropertiesVersionsPager(name, nil); vers.More(); {
		page, err := vers.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, vp := range page.Value {
			kb, err := c.GetKey(t.Context(), name, vp.KID.Version(), nil)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, kb.KeyBundle)
		}
	}
	slices.SortFunc(out, func(a, b azkeys.KeyBundle) int { return strings.Compare(string(*a.Key.KID), string(*b.Key.KID)) })
	return out
}
