package cmkd_test

import (
	"fmt"
	"time"

	"github.com/cmkd-io/cmkd"
)

// A status event as audit subscribers receive it: a CloudEvents 1.0
// document on cmkd.status.<tenant>.<kind>.
func ExampleStatusEvent_MarshalCloudEvent() {
	ev := cmkd.StatusEvent{
		ID: "sealed:acme:1", Kind: cmkd.KindSealed, Tenant: "acme", Source: "cmkd/cmkd-0",
		Time:   time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Key:    cmkd.MustParseKeyID("https://acme-vault.vault.azure.net/keys/cmk"),
		Reason: cmkd.ReasonDisabled, Version: "0123456789abcdef0123456789abcdef",
	}
	body, _ := ev.MarshalCloudEvent()
	fmt.Println(ev.Subject())
	fmt.Println(string(body))
	// Output:
	// cmkd.status.acme.sealed
	// {"specversion":"1.0","id":"sealed:acme:1","source":"cmkd/cmkd-0","type":"io.cmkd.sealed","subject":"acme","time":"2026-03-01T12:00:00Z","datacontenttype":"application/json","dataschema":"urn:cmkd:status:v1","data":{"tenant":"acme","vault":"https://acme-vault.vault.azure.net","key":"https://acme-vault.vault.azure.net/keys/cmk","version":"0123456789abcdef0123456789abcdef","reason":"disabled"}}
}

// Every spelling of a key parses to one canonical id.
func ExampleParseKeyID() {
	for _, s := range []string{
		"https://Acme-Vault.vault.azure.net:443/keys/CMK/",
		"https://acme-vault.vault.azure.net/keys/cmk/0123456789ABCDEF0123456789ABCDEF",
	} {
		k, err := cmkd.ParseKeyID(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Println(k.URL(), k.Version, k.LeaseName())
	}
	_, err := cmkd.ParseKeyID("http://acme-vault.vault.azure.net/keys/cmk")
	fmt.Println(err)
	// Output:
	// https://acme-vault.vault.azure.net/keys/cmk  key:https://acme-vault.vault.azure.net/keys/cmk
	// https://acme-vault.vault.azure.net/keys/cmk 0123456789abcdef0123456789abcdef key:https://acme-vault.vault.azure.net/keys/cmk
	// invalid key id "http://acme-vault.vault.azure.net/keys/cmk": scheme must be https
}
