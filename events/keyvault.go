package events

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/azsystemevents"
)

// kvData is what cmkd needs from a Microsoft.KeyVault.* data payload.
type kvData struct {
	ID, VaultName, ObjectName, Version string
	Expires, NotBefore                 time.Time
}

// canonicalKV maps folded data member names to the names azsystemevents
// expects (models_serde.go).
var canonicalKV = map[string]string{
	"id": "Id", "vaultname": "VaultName", "objecttype": "ObjectType",
	"objectname": "ObjectName", "version": "Version",
}

// decodeKeyVaultData decodes the data of a Key Vault event of type typ.
// Member names are matched case-insensitively and whitespace-trimmed, then
// the object is re-marshalled under the canonical names and decoded through
// the azsystemevents type for typ. EXP and NBF are read here instead: the
// published samples carry them as strings, and azsystemevents keeps them as
// float32, which cannot hold today's Unix time to the second.
func decodeKeyVaultData(typ string, raw json.RawMessage) (kvData, error) {
	f, err := foldObject(raw)
	if err != nil {
		return kvData{}, fmt.Errorf("data: %v", err)
	}
	canon := map[string]string{}
	for folded, name := range canonicalKV {
		s, err := f.str(folded)
		if err != nil {
			return kvData{}, fmt.Errorf("data: %v", err)
		}
		if s != "" {
			canon[name] = s
		}
	}
	d, err := viaSystemEvents(typ, canon)
	if err != nil {
		return kvData{}, err
	}
	if d.Expires, err = unixField(f, "exp"); err != nil {
		return kvData{}, err
	}
	if d.NotBefore, err = unixField(f, "nbf"); err != nil {
		return kvData{}, err
	}
	return d, nil
}

// viaSystemEvents decodes the canonical data through the SDK's typed model,
// so cmkd reads Key Vault payloads the way the SDK defines them.
func viaSystemEvents(typ string, canon map[string]string) (kvData, error) {
	b, err := json.Marshal(canon)
	if err != nil {
		return kvData{}, fmt.Errorf("data: %v", err)
	}
	var id, vault, name, version *string
	switch typ {
	case TypeKeyNewVersionCreated:
		var v azsystemevents.KeyVaultKeyNewVersionCreatedEventData
		err = json.Unmarshal(b, &v)
		id, vault, name, version = v.ID, v.VaultName, v.ObjectName, v.Version
	case TypeKeyNearExpiry:
		var v azsystemevents.KeyVaultKeyNearExpiryEventData
		err = json.Unmarshal(b, &v)
		id, vault, name, version = v.ID, v.VaultName, v.ObjectName, v.Version
	case TypeKeyExpired:
		var v azsystemevents.KeyVaultKeyExpiredEventData
		err = json.Unmarshal(b, &v)
		id, vault, name, version = v.ID, v.VaultName, v.ObjectName, v.Version
	case TypeVaultAccessPolicyChanged:
		var v azsystemevents.KeyVaultAccessPolicyChangedEventData
		err = json.Unmarshal(b, &v)
		id, vault, name, version = v.ID, v.VaultName, v.ObjectName, v.Version
	default:
		return kvData{}, fmt.Errorf("no data model for %s", typ)
	}
	if err != nil {
		return kvData{}, fmt.Errorf("data: %v", err)
	}
	return kvData{ID: deref(id), VaultName: deref(vault), ObjectName: deref(name), Version: deref(version)}, nil
}

// unixField reads a Unix time in seconds given as a JSON number or a
// numeric string; absent, null or empty gives the zero time.
func unixField(f fields, name string) (time.Time, error) {
	v, ok := f[name]
	if !ok || isNull(v) {
		return time.Time{}, nil
	}
	s := strings.TrimSpace(string(v))
	if strings.HasPrefix(s, `"`) {
		if err := json.Unmarshal(v, &s); err != nil {
			return time.Time{}, fmt.Errorf("data: field %q: %v", name, err)
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return time.Time{}, nil
		}
	}
	x, err := strconv.ParseFloat(s, 64)
	// Bound to years 0..9999 so time.Unix cannot overflow.
	if err != nil || math.IsNaN(x) || x < -62135596800 || x > 253402300799 {
		return time.Time{}, fmt.Errorf("data: field %q: not a Unix time in seconds", name)
	}
	sec, frac := math.Modf(x)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return strings.TrimSpace(*s)
}
