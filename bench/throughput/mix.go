package throughput

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/cmkd-io/cmkd"
	egemu "github.com/cmkd-io/cmkd/emulator/eventgrid"
	cevents "github.com/cmkd-io/cmkd/events"
)

// key is one Key Vault key in use by a tenant, at its current version.
type key struct {
	name, version string
	id            cmkd.KeyID // versionless
}

// kid is the key's versioned id, as Key Vault events carry it.
func (k key) kid() string { return k.id.At(k.version).String() }

// nearExpiryEvery makes every tenth event a KeyNearExpiry, the rest
// KeyNewVersionCreated: the two key events a system topic sends most.
const nearExpiryEvery = 10

// vaultName is the emulator's default vault name (keyvault.DefaultVaultName),
// which its own events carry.
const vaultName = "emulator"

// mix returns n Key Vault CloudEvents shaped like the Key Vault emulator's
// Sink emits them (emulator/keyvault/events.go), which follow the recorded
// Event Grid payloads: round-robin over the keys, so every key gets n/len(keys)
// duplicates interleaved with the others'. Each names its key's current
// version, so reconciling finds everything in step and nothing is rewrapped.
// Ids are random, as Event Grid's are: JetStream de-duplicates on them.
func mix(keys []key, n int, now time.Time) []egemu.CloudEvent {
	out := make([]egemu.CloudEvent, n)
	for i := range out {
		k := keys[i%len(keys)]
		typ, exp := cevents.TypeKeyNewVersionCreated, (*int64)(nil)
		if i%nearExpiryEvery == nearExpiryEvery-1 {
			// The event says the key expires in 20 days; the emulator's key
			// has no expiry, and the handler trusts Key Vault, not the event.
			e := now.Add(20 * 24 * time.Hour).Unix()
			typ, exp = cevents.TypeKeyNearExpiry, &e
		}
		out[i] = cloudEvent(k, typ, exp, now)
	}
	return out
}

func cloudEvent(k key, typ string, exp *int64, now time.Time) egemu.CloudEvent {
	data, _ := json.Marshal(struct {
		ID         string `json:"Id"`
		VaultName  string `json:"VaultName"`
		ObjectType string `json:"ObjectType"`
		ObjectName string `json:"ObjectName"`
		Version    string `json:"Version"`
		NBF        *int64 `json:"NBF"`
		EXP        *int64 `json:"EXP"`
	}{k.kid(), vaultName, "Key", k.name, k.version, nil, exp})
	return egemu.CloudEvent{
		SpecVersion: "1.0",
		ID:          randomID(),
		Source: "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/emulator" +
			"/providers/Microsoft.KeyVault/vaults/" + vaultName,
		Subject:         k.name,
		Type:            typ,
		Time:            now.UTC(),
		DataContentType: "application/json",
		Data:            data,
	}
}

func randomID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// keyName returns the name part of a key URL ".../keys/<name>".
