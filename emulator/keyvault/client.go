package keyvault

import (
	"crypto/tls"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	azpolicy "github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// Client returns the real azkeys client for this emulator: it trusts the
// emulator's CA, keeps a connection per concurrent call, and skips the
// challenge's resource check (the emulator's host is not a *.vault.azure.net
// name). retry is the client's retry policy.
func (s *Server) Client(cred azcore.TokenCredential, retry azpolicy.RetryOptions) (*azkeys.Client, error) {
	return azkeys.NewClient(s.URL(), cred, &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: &http.Client{Transport: &http.Transport{
				TLSClientConfig: &tls.Config{RootCAs: s.CAPool()}, MaxIdleConnsPerHost: 64,
			}},
			Retry: retry,
		},
		DisableChallengeResourceVerification: true,
	})
}
