package keyvault

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/cmkd-io/cmkd/emulator/internal/atomicfile"
)

// stateFormat versions the state file. Format 2 added the backup key and
// P-256K keys, format 3 the soft-delete setting made at run time. Older
// formats still load (and are written back as the current one); a file of
// any other format is refused, so an older emulator refuses a newer file
// instead of dropping what it cannot read.
const stateFormat = 3

// readableFormats are the state file formats this emulator loads.
var readableFormats = map[int]bool{1: true, 2: true, 3: true}

// ErrBadStateFile is wrapped by Start when Config.StateFile cannot be read
// or does not hold a vault this emulator can load.
var ErrBadStateFile = errors.New("keyvault emulator state file unusable")

// The state file is the whole vault, private key material included, so that
// a development vault survives a restart (or kill -9): key ids name the
// vault's address, and every DEK wrapped under them must keep unwrapping.
// Development only: real key material never belongs in a file like this.
type stateFile struct {
	Format    int    `json:"format"`
	Revoked   bool   `json:"revoked"`
	Seq       uint64 `json:"seq"`
	BackupKey []byte `json:"backup_key,omitempty"` // seals backup blobs; absent before format 2
	// SoftDelete is the setting made at run time; absent: Config's.
	SoftDelete *softDelete `json:"soft_delete,omitempty"`
	Keys       []keyState  `json:"keys"`
	Deleted    []keyState  `json:"deleted"`
}

type keyState struct {
	Name        string         `json:"name"`
	Latest      string         `json:"latest"`
	Versions    []versionState `json:"versions"`
	Policy      *policy        `json:"policy,omitempty"`
	DeletedDate int64          `json:"deleted_date,omitempty"`
	PurgeDate   int64          `json:"purge_date,omitempty"`
}

type versionState struct {
	ID          string            `json:"id"`
	Seq         uint64            `json:"seq"`
	Kty         string            `json:"kty"`
	Crv         string            `json:"crv,omitempty"`
	PKCS8       []byte            `json:"pkcs8,omitempty"` // RSA and EC but P-256K
	D           []byte            `json:"d,omitempty"`     // P-256K, which PKCS #8 in Go cannot hold
	Oct         []byte            `json:"oct,omitempty"`
	Ops         []string          `json:"ops"`
	Enabled     bool              `json:"enabled"`
	NBF         *int64            `json:"nbf,omitempty"`
	EXP         *int64            `json:"exp,omitempty"`
	Created     int64             `json:"created"`
	Updated     int64             `json:"updated"`
	Tags        map[string]string `json:"tags,omitempty"`
	NearSent    bool              `json:"near_sent,omitempty"`
	ExpiredSent bool              `json:"expired_sent,omitempty"`
}

// persist writes the vault to Config.StateFile, if set, and logs a failure
// (the change is already made in memory and answered). saveMu orders the
// writes and each snapshot is taken after the previous write, so the file
// always ends with the newest state. The vault lock is held only to encode
// the snapshot, never during disk I/O.
func (s *Server) persist() {
	if err := s.save(); err != nil {
		s.log.Error("keyvault emulator: save state", "file", s.cfg.StateFile, "err", err)
	}
}

func (s *Server) save() error {
	if s.cfg.StateFile == "" {
		return nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	if s.saveOff {
		return nil // closed: a later emulator may own the file by now
	}
	s.vault.mu.Lock()
	// Encoding under the lock copies everything the snapshot shares
	// with live keys (tags, ops, policies) before anyone can change it.
	b, err := json.Marshal(s.vault.snapshot(s.revoked.Load()))
	s.vault.mu.Unlock()
	if err != nil {
		return fmt.Errorf("encode state: %w", err)
	}
	return atomicfile.WriteFile(s.cfg.StateFile, b, 0o600)
}

// stopSaving waits for a write under way and makes later ones no-ops.
func (s *Server) stopSaving() {
	s.saveMu.Lock()
	s.saveOff = true
	s.saveMu.Unlock()
}

// loadState restores the vault from path; a missing file is an empty vault.
func (s *Server) loadState(path string) error {
	b, err := os.ReadFile(path) // #nosec G304 -- the emulator's own state file
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: read %s: %v", ErrBadStateFile, path, err)
	}
	st, err := decodeState(b)
	if err != nil {
		return fmt.Errorf("%w: %s: %v (it holds the emulated vault; delete it to start with an empty vault)",
			ErrBadStateFile, path, err)
	}
	s.vault = st.vault
	s.revoked.Store(st.revoked)
	return nil
}

// loaded is a decoded state file.
type loaded struct {
	vault   *vault
	revoked bool
}

// decodeState parses and checks a state file. It never panics on any
// input: the fuzz test feeds it arbitrary bytes.
func decodeState(b []byte) (loaded, error) {
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return loaded{}, fmt.Errorf("corrupt: %w", err)
	}
	if !readableFormats[st.Format] {
		return loaded{}, fmt.Errorf("format %d, this emulator reads formats 1 to %d", st.Format, stateFormat)
	}
	vt, err := restore(st)
	if err != nil {
		return loaded{}, err
	}
	return loaded{vault: vt, revoked: st.Revoked}, nil
}
