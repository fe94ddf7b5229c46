package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// TestEmulatorCommand starts `cmkd emulator`, creates a key through the real
// azkeys client and receives the resulting KeyNewVersionCreated event through
// the real aznamespaces client: Key Vault → Event Grid on loopback.
func TestEmulatorCommand(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	ep, done := startEmulatorCommand(t, ctx)

	kv, err := azkeys.NewClient(ep.KeyVault, staticToken("dev"), &azkeys.ClientOptions{
		ClientOptions:                        azcore.ClientOptions{Transport: trusting(t, ep.KeyVaultCA)},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	created, err := kv.CreateKey(ctx, "cmk", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
	if err != nil {
		t.Fatalf("create key through the emulator: %v", err)
	}

	rc, err := aznamespaces.NewReceiverClientWithSharedKeyCredential(ep.EventGrid, ep.Topic, ep.Subscription,
		azcore.NewKeyCredential(ep.EventGridKey), &aznamespaces.ReceiverClientOptions{
			ClientOptions: azcore.ClientOptions{Transport: trusting(t, ep.EventGridCA)},
		})
	if err != nil {
		t.Fatal(err)
	}
	got, err := rc.ReceiveEvents(ctx, &aznamespaces.ReceiveEventsOptions{MaxEvents: to.Ptr[int32](1), MaxWaitTime: to.Ptr[int32](10)})
	if err != nil {
		t.Fatalf("receive from the event grid emulator: %v", err)
	}
	if len(got.Details) != 1 {
		t.Fatalf("received %d events, want the one KeyNewVersionCreated", len(got.Details))
	}
	ev := got.Details[0].Event
	if ev.Type != "Microsoft.KeyVault.KeyNewVersionCreated" || ev.Subject == nil || *ev.Subject != "cmk" {
		t.Fatalf("event type %q subject %v, want KeyNewVersionCreated for cmk", ev.Type, ev.Subject)
	}
	var data struct{ Id string }
	if err := json.Unmarshal(ev.Data.([]byte), &data); err != nil {
		t.Fatalf("event data: %v", err)
	}
	if data.Id != string(*created.Key.KID) {
		t.Fatalf("event names %q, want the created version %q", data.Id, *created.Key.KID)
	}

	cancel()
	if err := <-done; err != nil {
		t.Fatalf("cmkd emulator exit: %v", err)
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"emulator", "--no-such-flag"}, {"emulator", "extra"}} {
		if code := run(t.Context(), args, io.Discard, io.Discard); code != exitUsage {
			t.Errorf("cmkd %s exited %d, want %d", strings.Join(args, " "), code, exitUsage)
		}
	}
	if code := run(t.Context(), []string{"emulator", "--help"}, io.Discard, io.Discard); code != exitOK {
		t.Errorf("cmkd emulator --help exited %d, want 0", code)
	}
}

func startEmulatorCommand(t *testing.T, ctx context.Context) (emulatorEndpoints, <-chan error) {
	t.Helper()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		code := run(ctx, []string{"emulator", "--json", "--data", t.TempDir()}, pw, io.Discard)
		pw.Close()
		if code != exitOK {
			done <- fmt.Errorf("exit code %d", code)
			return
		}
		done <- nil
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("read endpoints: %v", err)
	}
	go io.Copy(io.Discard, pr)
	var ep emulatorEndpoints
	if err := json.Unmarshal([]byte(line), &ep); err != nil {
		t.Fatalf("endpoints %q: %v", line, err)
	}
	return ep, done
}

func trusting(t *testing.T, caFile string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("emulator CA file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", caFile)
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

type staticToken string

func (s staticToken) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: string(s), ExpiresOn: time.Now().Add(time.Hour)}, nil
}
