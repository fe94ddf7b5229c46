package config

import (
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"

	"github.com/cmkd-io/cmkd/kek"
)

// StatusEventGridClient builds the azeventgrid publisher for
// status.eventgrid with the constructor its credential calls for: a topic
// access key, a SAS token, or the Key Vault credential's Entra identity.
// It returns nil when status.eventgrid is not configured.
func StatusEventGridClient(c *Config) (*azeventgrid.Client, error) {
	sink := c.Status.EventGrid
	if sink.Endpoint == "" {
		return nil, nil
	}
	pool, err := LoadCA(sink.CAFile)
	if err != nil {
		return nil, fmt.Errorf("status.eventgrid.ca_file: %w", err)
	}
	opts := &azeventgrid.ClientOptions{}
	if pool != nil {
		opts.Transport = &http.Client{Transport: &http.Transport{
			Proxy:           http.ProxyFromEnvironment,
			TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		}}
	}
	var client *azeventgrid.Client
	switch {
	case sink.Key != "":
		client, err = azeventgrid.NewClientWithSharedKeyCredential(sink.Endpoint, azcore.NewKeyCredential(sink.Key), opts)
	case sink.SAS != "":
		client, err = azeventgrid.NewClientWithSAS(sink.Endpoint, azcore.NewSASCredential(sink.SAS), opts)
	default:
		kv := c.KeyVault
		var cred azcore.TokenCredential
		cred, err = kek.NewCredential(kek.CredentialConfig{Kind: kv.Credential, ClientID: kv.ClientID, TenantID: kv.TenantID, Token: kv.Token})
		if err == nil {
			client, err = azeventgrid.NewClient(sink.Endpoint, cred, opts)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("status.eventgrid: %w", err)
	}
	return client, nil
}
