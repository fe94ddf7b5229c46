package envelope_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/cmkd-io/cmkd/envelope"
)

// The envelope style: the application keeps the ciphertext (here in a
// variable; in a database column in practice) and binds it to where it
// belongs with additional data.
func ExampleClient_Encrypt() {
	path, done := exampleConfig() // cmkd's config; tenant "acme" is added
	defer done()
	ctx := context.Background()

	env, err := envelope.OpenFile(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	defer env.Close()

	aad := []byte("invoices/42/iban")
	ct, err := env.Encrypt(ctx, "acme", []byte("DE89 3704 0044 0532 0130 00"), aad)
	if err != nil {
		log.Fatal(err)
	}
	iban, err := env.Decrypt(ctx, "acme", ct, aad)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", iban)

	// The same ciphertext copied to another invoice does not decrypt.
	_, err = env.Decrypt(ctx, "acme", ct, []byte("invoices/43/iban"))
	fmt.Println(errors.Is(err, envelope.ErrIntegrity))
	// Output:
	// DE89 3704 0044 0532 0130 00
	// true
}

// The records style: cmkd keeps the data, encrypted under the tenant's key.
func ExampleClient_Put() {
	path, done := exampleConfig()
	defer done()
	ctx := context.Background()

	env, err := envelope.OpenFile(ctx, path)
	if err != nil {
		log.Fatal(err)
	}
	defer env.Close()

	for _, id := range []string{"42", "43"} {
		if err := env.Put(ctx, "acme", "profile/"+id, []byte(`{"name":"Ada `+id+`"}`)); err != nil {
			log.Fatal(err)
		}
	}
	v, err := env.Get(ctx, "acme", "profile/42")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s\n", v)

	keys, err := env.List(ctx, "acme", "", 100)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(keys)

	if err := env.Delete(ctx, "acme", "profile/43"); err != nil {
		log.Fatal(err)
	}
	_, err = env.Get(ctx, "acme", "profile/43")
	fmt.Println(errors.Is(err, envelope.ErrNotFound))

	_, err = env.Get(ctx, "globex", "profile/42")
	fmt.Println(errors.Is(err, envelope.ErrUnknownTenant))
	// Output:
	// {"name":"Ada 42"}
	// [profile/42 profile/43]
	// true
	// true
}
