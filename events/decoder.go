package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
)

// vaultNameRE is Key Vault's rule for vault names: 3-24 letters, digits
// and dashes.
var vaultNameRE = regexp.MustCompile(`^[0-9A-Za-z-]{3,24}$`)

// Limits on what one delivery may hold. Event Grid itself delivers at most
// 1 MiB per request; larger bodies are not from Event Grid.
const (
	MaxBodyBytes  = 1 << 20
	MaxBatchCount = 5000
)

// DecoderConfig configures a Decoder.
type DecoderConfig struct {
	// AllowedVaults lists the vaults whose events are accepted, as vault URLs
	// ("https://myvault.vault.azure.net") or host names
	// ("myvault.vault.azure.net"). Empty accepts every vault. Events of other
	// vaults are dropped and counted: a key URL decides where cmkd sends
	// requests, so it must not come from anyone who can post an event.
	AllowedVaults []string
	// Registerer receives cmkd_events_decoded_total{type,outcome}; nil keeps
	// the metric unregistered.
	Registerer prometheus.Registerer
}

// Result is what one delivery body held.
type Result struct {
	// Events are the lifecycle events cmkd acts on, in delivery order.
	Events []Event
	// Ignored counts events of types cmkd does not act on: secret and
	// certificate events, anything unknown.
	Ignored int
	// Dropped counts events of vaults not on the allow-list.
	Dropped int
}

// Decoder turns Event Grid deliveries into lifecycle events. It is safe for
// concurrent use.
type Decoder struct {
	allowed allowList
	decoded *prometheus.CounterVec
}

// NewDecoder returns a Decoder for cfg.
func NewDecoder(cfg DecoderConfig) *Decoder {
	return &Decoder{allowed: newAllowList(cfg.AllowedVaults), decoded: newDecodedCounter(cfg.Registerer)}
}

// Decode decodes one delivery body in any shape Event Grid delivers: Event
// Grid schema (one event or an array), CloudEvents 1.0 structured mode (one
// event or a batch), told apart by content. Ignored and dropped events are
// counted in the Result, not returned. Malformed input gives an error
// wrapping ErrMalformed that names the index and field at fault; then no
// event of the body is returned.
func (d *Decoder) Decode(body []byte) (Result, error) {
	items, err := splitBody(body)
	if err != nil {
		d.decoded.WithLabelValues(typeOther, outcomeMalformed).Inc()
		return Result{}, err
	}
	var res Result
	for i, raw := range items {
		ev, outcome, err := d.decodeOne(raw)
		if err != nil {
			if len(items) > 1 || body[firstNonSpace(body)] == '[' {
				return Result{}, fmt.Errorf("%w: event %d: %v", ErrMalformed, i, err)
			}
			return Result{}, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		switch outcome {
		case outcomeAccepted:
			res.Events = append(res.Events, ev)
		case outcomeIgnored:
			res.Ignored++
		case outcomeDropped:
			res.Dropped++
		}
	}
	return res, nil
}

// DecodeCloudEvent decodes one CloudEvent in structured mode, as a pull
// delivery hands them out one at a time. relevant is false when the event
// is ignored or dropped.
func (d *Decoder) DecodeCloudEvent(body []byte) (ev Event, relevant bool, err error) {
	if len(body) > MaxBodyBytes {
		d.decoded.WithLabelValues(typeOther, outcomeMalformed).Inc()
		return Event{}, false, fmt.Errorf("%w: event is %d bytes, limit %d", ErrMalformed, len(body), MaxBodyBytes)
	}
	if f, ferr := foldObject(body); ferr == nil && !f.has("specversion") {
		d.decoded.WithLabelValues(typeOther, outcomeMalformed).Inc()
		return Event{}, false, fmt.Errorf("%w: not a CloudEvent: no specversion", ErrMalformed)
	}
	ev, outcome, err := d.decodeOne(body)
	if err != nil {
		return Event{}, false, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return ev, outcome == outcomeAccepted, nil
}

// splitBody checks the body's limits and returns its events' raw JSON.
func splitBody(body []byte) ([]json.RawMessage, error) {
	if len(body) > MaxBodyBytes {
		return nil, fmt.Errorf("%w: body is %d bytes, limit %d", ErrMalformed, len(body), MaxBodyBytes)
	}
	i := firstNonSpace(body)
	if i == len(body) {
		return nil, fmt.Errorf("%w: empty body", ErrMalformed)
	}
	switch body[i] {
	case '{':
		return []json.RawMessage{body}, nil
	case '[':
		var items []json.RawMessage
		if err := json.Unmarshal(body, &items); err != nil {
			return nil, fmt.Errorf("%w: not a JSON array of events: %v", ErrMalformed, err)
		}
		if len(items) > MaxBatchCount {
			return nil, fmt.Errorf("%w: batch of %d events, limit %d", ErrMalformed, len(items), MaxBatchCount)
		}
		return items, nil
	}
	return nil, fmt.Errorf("%w: body is neither a JSON object nor an array", ErrMalformed)
}

func firstNonSpace(b []byte) int {
	return len(b) - len(bytes.TrimLeft(b, " \t\r\n"))
}

// decodeOne decodes a single event and counts its outcome.
func (d *Decoder) decodeOne(raw []byte) (Event, string, error) {
	env, err := parseEnvelope(raw)
	if err != nil {
		d.decoded.WithLabelValues(metricType(env.typ), outcomeMalformed).Inc()
		return Event{}, outcomeMalformed, err
	}
	ev, outcome, err := d.lifecycle(env)
	if err != nil {
		outcome = outcomeMalformed
	}
	d.decoded.WithLabelValues(metricType(env.typ), outcome).Inc()
	if err != nil {
		return Event{}, outcome, fmt.Errorf("%s %q: %v", env.typ, env.id, err)
	}
	if outcome == outcomeAccepted {
		ev.Raw = append(json.RawMessage(nil), raw...)
	}
	return ev, outcome, nil
}

// lifecycle maps an envelope to an Event and says whether cmkd acts on it.
func (d *Decoder) lifecycle(env envelope) (Event, string, error) {
	ev := Event{ID: env.id, Type: env.typ, Time: env.time}
	var err error
	switch env.typ {
	case TypeKeyNewVersionCreated, TypeKeyNearExpiry, TypeKeyExpired:
		err = keyEvent(&ev, env)
	case TypeVaultAccessPolicyChanged:
		err = vaultEvent(&ev, env)
	case TypeProbe:
		err = probeEvent(&ev, env)
	default:
		// Secret, certificate and any other events: recognised, not ours.
		return Event{}, outcomeIgnored, nil
	}
	if err != nil {
		return Event{}, outcomeMalformed, err
	}
	if !d.allowed.allows(ev.Vault) {
		return Event{}, outcomeDropped, nil
	}
	return ev, outcomeAccepted, nil
}

func keyEvent(ev *Event, env envelope) error {
	if len(env.data) == 0 || isNull(env.data) {
		return fmt.Errorf("field \"data\": missing")
	}
	d, err := decodeKeyVaultData(env.typ, env.data)
	if err != nil {
		return err
	}
	if d.ID == "" {
		return fmt.Errorf("data: field \"id\": missing")
	}
	if ev.Key, err = cmkd.ParseKeyID(d.ID); err != nil {
		return fmt.Errorf("data: field \"id\": %v", err)
	}
	if ev.Key.Version == "" && d.Version != "" {
		ev.Key = ev.Key.At(d.Version)
	}
	ev.Vault = ev.Key.Vault
	ev.Expires, ev.NotBefore = d.Expires, d.NotBefore
	return nil
}

// vaultEvent reads the vault of a vault-wide event from the data's id, or
// failing that from its vault name in the public cloud's DNS zone.
func vaultEvent(ev *Event, env envelope) error {
	if len(env.data) == 0 || isNull(env.data) {
		return fmt.Errorf("field \"data\": missing")
	}
	d, err := decodeKeyVaultData(env.typ, env.data)
	if err != nil {
		return err
	}
	switch {
	case d.ID != "":
		if ev.Vault, err = cmkd.ParseVault(d.ID); err != nil {
			return fmt.Errorf("data: field \"id\": %v", err)
		}
	case vaultNameRE.MatchString(d.VaultName):
		ev.Vault = "https://" + strings.ToLower(d.VaultName) + ".vault.azure.net"
	default:
		return fmt.Errorf("data: neither \"id\" nor a valid \"vaultName\"")
	}
	return nil
}

// probeEvent reads cmkd's own command event: data {"key": url}, or the
// key URL as subject.
func probeEvent(ev *Event, env envelope) error {
	key := env.subject
	if len(env.data) > 0 && !isNull(env.data) {
		f, err := foldObject(env.data)
		if err != nil {
			return fmt.Errorf("data: %v", err)
		}
		k, err := f.str("key")
		if err != nil {
			return fmt.Errorf("data: %v", err)
		}
		if k != "" {
			key = k
		}
	}
	if key == "" {
		return fmt.Errorf("no key URL in data \"key\" or \"subject\"")
	}
	var err error
	if ev.Key, err = cmkd.ParseKeyID(key); err != nil {
		return err
	}
	ev.Vault = ev.Key.Vault
	return nil
}
