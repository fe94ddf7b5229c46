package events_test

import (
	"fmt"

	"github.com/cmkd-io/cmkd/events"
)

func ExampleDecoder_Decode() {
	d := events.NewDecoder(events.DecoderConfig{AllowedVaults: []string{"sample-kv.vault.azure.net"}})
	res, err := d.Decode([]byte(`[{
		"id": "1", "eventType": "Microsoft.KeyVault.KeyNewVersionCreated", "subject": "tenant-key",
		"eventTime": "2024-05-01T10:00:00Z", "dataVersion": "1",
		"data": {"Id": "https://sample-kv.vault.azure.net/keys/tenant-key/0123456789abcdef0123456789abcdef"}
	}, {
		"id": "2", "eventType": "Microsoft.KeyVault.SecretNewVersionCreated", "subject": "password",
		"eventTime": "2024-05-01T10:00:00Z", "dataVersion": "1", "data": {}
	}]`))
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, ev := range res.Events {
		fmt.Println(ev.Type, ev.Key.URL(), ev.Key.Version)
	}
	fmt.Println("ignored:", res.Ignored)
	// Output:
	// Microsoft.KeyVault.KeyNewVersionCreated https://sample-kv.vault.azure.net/keys/tenant-key 0123456789abcdef0123456789abcdef
	// ignored: 1
}
