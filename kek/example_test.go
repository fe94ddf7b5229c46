package kek_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"log"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/kek"
)

// Wrap a fresh DEK under a tenant's key and unwrap it again. Against a real
// vault, use NewCredential and leave RootCAs, Policy and
// DisableChallengeResourceVerification unset.
func ExampleClient_Wrap() {
	ctx := context.Background()
	srv, err := keyvault.Start(keyvault.Config{ThrottleLimit: -1})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	createKey(ctx, srv, "tenant-a")

	c, err := kek.New(kek.Config{
		Credential:                           kek.StaticToken("dev"),
		RootCAs:                              srv.CAPool(),
		DisableChallengeResourceVerification: true,
		Policy:                               kek.VaultPolicy{AllowLoopback: true}, // the emulator's 127.0.0.1
	})
	if err != nil {
		log.Fatal(err)
	}
	dek := make([]byte, 32)
	_, _ = rand.Read(dek)

	key, err := cmkd.ParseKeyID(srv.URL() + "/keys/tenant-a") // parse once, at the edge
	if err != nil {
		log.Fatal(err)
	}
	w, err := c.Wrap(ctx, key, dek) // latest version, wrapped locally
	if err != nil {
		log.Fatal(err)
	}
	back, err := c.Unwrap(ctx, w) // always by Key Vault
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(w.Alg, bytes.Equal(back, dek))
	// Output: RSA-OAEP-256 true
}

func createKey(ctx context.Context, srv *keyvault.Server, name string) {
	// Keys are made with the plain SDK client, as an operator would make
	// them in Azure. Default key_ops include wrapKey and unwrapKey.
	admin, err := azkeys.NewClient(srv.URL(), kek.StaticToken("admin"), &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{Transport: &http.Client{Transport: &http.Transport{
			TLSClientConfig: &tls.Config{RootCAs: srv.CAPool()},
		}}},
		DisableChallengeResourceVerification: true,
	})
	if err != nil {
		log.Fatal(err)
	}
	kty := azkeys.KeyTypeRSA
	if _, err := admin.CreateKey(ctx, name, azkeys.CreateKeyParameters{Kty: &kty}, nil); err != nil {
		log.Fatal(err)
	}
}

// Check a tenant's key before accepting it. The emulator's vault has no
// purge protection, as a test vault often has not: it is refused unless
// AllowPurgeable, and then accepted with a warning.
func ExampleClient_Onboard() {
	ctx := context.Background()
	srv, err := keyvault.Start(keyvault.Config{ThrottleLimit: -1})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	createKey(ctx, srv, "tenant-b")
	c, err := kek.New(kek.Config{
		Credential:                           kek.StaticToken("dev"),
		RootCAs:                              srv.CAPool(),
		DisableChallengeResourceVerification: true,
		Policy:                               kek.VaultPolicy{AllowLoopback: true},
	})
	if err != nil {
		log.Fatal(err)
	}
	key := cmkd.MustParseKeyID(srv.URL() + "/keys/tenant-b")

	_, err = c.Onboard(ctx, key, kek.OnboardOptions{})
	var oe *kek.OnboardError
	if errors.As(err, &oe) {
		fmt.Println(oe.Code, "fix:", oe.Fix)
	}
	o, err := c.Onboard(ctx, key, kek.OnboardOptions{AllowPurgeable: true})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(o.Kty, o.KeySize, o.WrapAlg, len(o.Warnings))
	// Output:
	// purge_protection_off fix: az keyvault update --name <vault-name> --enable-purge-protection true
	// RSA 2048 RSA-OAEP-256 1
}
