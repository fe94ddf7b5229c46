package events

import (
	"context"
	"encoding/json"
	"time"
)

// Event types cmkd understands. Key Vault's come from an Event Grid system
// topic; TypeProbe is cmkd's own command event.
const (
	TypeKeyNewVersionCreated     = "Microsoft.KeyVault.KeyNewVersionCreated"
	TypeKeyNearExpiry            = "Microsoft.KeyVault.KeyNearExpiry"
	TypeKeyExpired               = "Microsoft.KeyVault.KeyExpired"
	TypeVaultAccessPolicyChanged = "Microsoft.KeyVault.VaultAccessPolicyChanged"
	TypeProbe                    = "io.cmkd.probe"
)

// Event is one lifecycle event, normalised from any delivery shape.
type Event struct {
	// ID is the delivery's event id (Event Grid schema "id", CloudEvents "id").
	ID string
	// Type is one of the Type constants.
	Type string
	// Time is when the event happened, as the producer stamped it.
	Time time.Time
	// Vault is the vault URL, normalised: lower-case scheme and host, no
	// trailing slash, e.g. "https://myvault.vault.azure.net".
	Vault string
	// KeyURL is the versionless key URL, Vault + "/keys/" + name. Empty for
	// vault-wide events (TypeVaultAccessPolicyChanged).
	KeyURL string
	// Version is the key version the event names, if any.
	Version string
	// Expires and NotBefore come from the event data when it carries them.
	Expires, NotBefore time.Time
	// Raw is the single event exactly as delivered, kept for audit.
	Raw json.RawMessage
}

// Handler handles one event. Its error decides what the source does with the
// delivery: nil settles it; a Permanent error dead-letters it; any other error
// (optionally a Transient one with a delay) makes it redeliver.
type Handler func(ctx context.Context, ev Event) error
