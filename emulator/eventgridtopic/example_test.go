package eventgridtopic_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azeventgrid"

	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
)

// A sender publishes with the unchanged azeventgrid client, trusting the
// emulator's certificate; the test reads back what arrived.
func Example() {
	srv, err := eventgridtopic.Start(eventgridtopic.Config{Key: "bXktdG9waWMta2V5", AcceptBearer: true})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	opts := &azeventgrid.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: srv.CAPool(), MinVersion: tls.VersionTLS12}},
	}}}
	client, err := azeventgrid.NewClientWithSharedKeyCredential(srv.URL(), azcore.NewKeyCredential("bXktdG9waWMta2V5"), opts)
	if err != nil {
		panic(err)
	}
	ev, err := messaging.NewCloudEvent("/vaults/v1", "Microsoft.KeyVault.KeyNewVersionCreated", map[string]string{"ObjectName": "key1"}, nil)
	if err != nil {
		panic(err)
	}
	if _, err := client.PublishCloudEvents(context.Background(), []messaging.CloudEvent{ev}, nil); err != nil {
		panic(err)
	}
	for _, got := range srv.Published() {
		fmt.Println(got.Type, got.Source, string(got.Data))
	}
	// Output: Microsoft.KeyVault.KeyNewVersionCreated /vaults/v1 {"ObjectName":"key1"}
}
