package eventgrid_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/cmkd-io/cmkd/emulator/eventgrid"
)

// The emulator is reached with the unchanged aznamespaces client; only the
// transport needs to trust the emulator's CA.
func Example() {
	s, err := eventgrid.Start(eventgrid.Config{Key: "k", Topics: map[string][]string{"keyvault": {"cmkd"}}})
	if err != nil {
		panic(err)
	}
	defer s.Close()

	_ = s.Publish("keyvault", eventgrid.CloudEvent{
		SpecVersion: "1.0", ID: "1", Source: "/vaults/v", Type: "Microsoft.KeyVault.KeyNewVersionCreated",
		Data: json.RawMessage(`{"Id":"https://v.vault.azure.net/keys/k/1"}`),
	})

	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.CAPool()}}
	opts := &aznamespaces.ReceiverClientOptions{ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: tr}}}
	rcv, err := aznamespaces.NewReceiverClientWithSharedKeyCredential(s.URL(), "keyvault", "cmkd", azcore.NewKeyCredential("k"), opts)
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	resp, err := rcv.ReceiveEvents(ctx, nil)
	if err != nil {
		panic(err)
	}
	d := resp.Details[0]
	fmt.Println(d.Event.Type, *d.BrokerProperties.DeliveryCount)
	_, _ = rcv.AcknowledgeEvents(ctx, []string{*d.BrokerProperties.LockToken}, nil)
	fmt.Println("pending:", s.Pending("keyvault", "cmkd"))
	// Output:
	// Microsoft.KeyVault.KeyNewVersionCreated 1
	// pending: 0
}
