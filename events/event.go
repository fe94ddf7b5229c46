package events

import (
	"context"
	"encoding/json"
	"time"

	"github.com/cmkd-io/cmkd"
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
	// Vault is the canonical vault URL, e.g. "https://myvault.vault.azure.net".
	Vault string
	// Key is the key the event names, with the version when it names one;
	// zero for vault-wide events (TypeVaultAccessPolicyChanged).
	Key cmkd.KeyID
	// Expires and NotBefore come from the event data when it carries them.
	Expires, NotBefore time.Time
	// Raw is the single event exactly as delivered, kept for audit.
	Raw json.RawMessage
}

// Handler handles one event. Its error decides what the source does with
// the delivery (see Settle).
type Handler func(ctx context.Context, ev Event) error

// Source delivers lifecycle events to a handler until ctx ends. The worker
// runs every source with its own handler, wrapped in what every delivery
// needs whatever its source (panic recovery, metrics, logging); a source
// only decodes, hands over, and settles the delivery as Settle says.
type Source interface {
	// Name labels the source in metrics and logs.
	Name() string
	// Run delivers events to h until ctx ends, then drains what is in
	// flight and returns nil; other errors mean the source cannot run.
	Run(ctx context.Context, h Handler) error
}
