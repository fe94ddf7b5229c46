package keyvault_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd/emulator/keyvault"
)

type anyToken struct{}

func (anyToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: "t", ExpiresOn: time.Now().Add(time.Hour)}, nil
}

// The unchanged azkeys client talks to the emulator once it trusts the
// emulator's CA and skips the challenge's host check (the host is 127.0.0.1).
func ExampleStart() {
	srv, err := keyvault.Start(keyvault.Config{})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	client, _ := azkeys.NewClient(srv.URL(), anyToken{}, &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: srv.CAPool()}}}},
		DisableChallengeResourceVerification: true,
	})
	kty := azkeys.KeyTypeOctHSM
	_, err = client.CreateKey(context.Background(), "tenant-a", azkeys.CreateKeyParameters{Kty: &kty}, nil)
	fmt.Println(err, srv.Calls()["createKey"])
	// Output: <nil> 1
}
