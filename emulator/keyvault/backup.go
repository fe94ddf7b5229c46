package keyvault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/json"
	"strings"
	"sync"
)

// A backup blob is a key with every version, private material included,
// sealed with AES-256-GCM under the vault's backup key:
//
//	backupMagic || nonce (12) || ciphertext || tag (16)
//
// The magic is also the additional data, so a blob of another emulator
// version fails to open instead of being misread. Key Vault restores a
// blob in any vault of the same subscription and geography; here the
// geography is the backup key: every emulator of one process shares it,
// and a vault with a StateFile keeps it there, so a blob also restores in
// a later process started from the same file.
const backupMagic = "KeyVaultEmulatorKeyBackupV1."

const backupKeySize = 32

// processBackupKey is the backup key of every vault made in this process
// that did not load one from a state file.
var processBackupKey = sync.OnceValue(func() []byte {
	k := make([]byte, backupKeySize)
	_, _ = rand.Read(k)
	return k
})

// backupContent is what a blob holds: the key as the state file writes it.
type backupContent struct {
	Format int      `json:"format"`
	Key    keyState `json:"key"`
}

type backupResp struct {
	Value string `json:"value"`
}

type restoreReq struct {
	Value *string `json:"value"`
}

func sealBackup(key, plain []byte) []byte {
	block, _ := aes.NewCipher(key) // backupKeySize bytes by construction
	g, _ := cipher.NewGCMWithRandomNonce(block)
	return g.Seal([]byte(backupMagic), nil, plain, []byte(backupMagic)) // #nosec G407 -- NewGCMWithRandomNonce draws the nonce; the first argument is the output prefix
}

func openBackup(key, blob []byte) ([]byte, bool) {
	sealed, ok := bytes.CutPrefix(blob, []byte(backupMagic))
	if !ok {
		return nil, false
	}
	block, _ := aes.NewCipher(key)
	g, _ := cipher.NewGCMWithRandomNonce(block)
	plain, err := g.Open(nil, nil, sealed, []byte(backupMagic))
	return plain, err == nil
}

// backupKey answers BackupKeyResult for a live key; a deleted key is not
// found, as in Key Vault.
func (s *Server) backupKey(c *call) (any, error) {
	s.vault.mu.Lock()
	k, _, err := s.vault.find(c.name, "")
	var plain []byte
	if err == nil {
		// Encoded under the lock: the state shares tags, ops and policy
		// with the live key.
		plain, err = json.Marshal(backupContent{Format: stateFormat, Key: k.state()})
	}
	s.vault.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return backupResp{Value: b64(sealBackup(s.vault.backupKey, plain))}, nil
}

// restoreKey brings back a key with all its versions, ids, attributes,
// tags and rotation policy, under this vault's URL. The name must be
// free: neither live nor soft-deleted.
func (s *Server) restoreKey(c *call) (any, error) {
	var req restoreReq
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	if req.Value == nil {
		return nil, badParameter("Property value is required.")
	}
	blob, err := unb64("value", *req.Value)
	if err != nil {
		return nil, err
	}
	k, err := unsealKey(s.vault.backupKey, blob)
	if err != nil {
		return nil, err
	}
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	lower := strings.ToLower(k.name)
	if s.vault.keys[lower] != nil || s.vault.deleted[lower] != nil {
		return nil, restoreConflict(c.vw.kid(k, k.latest))
	}
	for _, v := range k.sortedVersions() {
		s.vault.seq++
		v.seq = s.vault.seq
		v.nearSent, v.expiredSent = false, false // this vault has sent no events for them
	}
	if k.policy != nil {
		k.policy.ID = c.vw.keyURL(k) + "/rotationpolicy"
	}
	s.vault.keys[lower] = k
	return c.vw.bundle(k, k.latest), nil
}

// unsealKey opens a blob and checks the key in it as Start checks a state
// file. Whatever is wrong, the caller learns only that the blob is bad.
func unsealKey(backupKey, blob []byte) (*key, error) {
	plain, ok := openBackup(backupKey, blob)
	if !ok {
		return nil, badBackup()
	}
	var content backupContent
	if err := json.Unmarshal(plain, &content); err != nil || !readableFormats[content.Format] {
		return nil, badBackup()
	}
	k, err := content.Key.key()
	if err != nil {
		return nil, badBackup()
	}
	k.deletedDate, k.purgeDate = 0, 0
	return k, nil
}
