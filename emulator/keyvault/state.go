package keyvault

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// stateFormat versions the state file; a file of another format is refused.
const stateFormat = 1

// The state file is the whole vault, private key material included, so that
// a development vault survives a restart (or kill -9): key ids name the
// vault's address, and every DEK wrapped under them must keep unwrapping.
// Development only: real key material never belongs in a file like this.
type stateFile struct {
	Format  int        `json:"format"`
	Revoked bool       `json:"revoked"`
	Seq     uint64     `json:"seq"`
	Keys    []keyState `json:"keys"`
	Deleted []keyState `json:"deleted"`
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
	PKCS8       []byte            `json:"pkcs8,omitempty"` // RSA and EC
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

// persist writes the vault to Config.StateFile, if set. saveMu orders the
// writes, and each snapshot is taken after the previous write, so the file
// always ends with the newest state; the rename makes every write whole.
func (s *Server) persist() {
	if s.cfg.StateFile == "" {
		return
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	s.vault.mu.Lock()
	st := s.vault.snapshot(s.revoked.Load())
	s.vault.mu.Unlock()
	if err := writeState(s.cfg.StateFile, st); err != nil {
		s.log.Error("keyvault emulator: save state", "file", s.cfg.StateFile, "err", err)
	}
}

func writeState(path string, st stateFile) error {
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// loadState restores the vault from path; a missing file is an empty vault.
func (s *Server) loadState(path string) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read state file %s: %w", path, err)
	}
	var st stateFile
	if err := json.Unmarshal(b, &st); err != nil {
		return fmt.Errorf("state file %s is corrupt (%v): delete it to start with an empty vault", path, err)
	}
	if st.Format != stateFormat {
		return fmt.Errorf("state file %s has format %d, this emulator reads %d: delete it to start with an empty vault", path, st.Format, stateFormat)
	}
	if err := s.vault.restore(st); err != nil {
		return fmt.Errorf("state file %s: %w: delete it to start with an empty vault", path, err)
	}
	s.revoked.Store(st.Revoked)
	return nil
}

func (vt *vault) snapshot(revoked bool) stateFile {
	st := stateFile{Format: stateFormat, Revoked: revoked, Seq: vt.seq}
	for _, k := range sortedKeys(vt.keys) {
		st.Keys = append(st.Keys, k.state())
	}
	for _, k := range sortedKeys(vt.deleted) {
		st.Deleted = append(st.Deleted, k.state())
	}
	return st
}

func (k *key) state() keyState {
	ks := keyState{Name: k.name, Policy: k.policy, DeletedDate: k.deletedDate, PurgeDate: k.purgeDate}
	if k.latest != nil {
		ks.Latest = k.latest.id
	}
	for _, v := range k.sortedVersions() {
		vs := versionState{
			ID: v.id, Seq: v.seq, Kty: v.m.kty, Crv: v.m.crv, Oct: v.m.oct, Ops: v.ops, Enabled: v.enabled,
			NBF: v.nbf, EXP: v.exp, Created: v.created, Updated: v.updated, Tags: v.tags,
			NearSent: v.nearSent, ExpiredSent: v.expiredSent,
		}
		switch {
		case v.m.rsa != nil:
			vs.PKCS8, _ = x509.MarshalPKCS8PrivateKey(v.m.rsa)
		case v.m.ec != nil:
			vs.PKCS8, _ = x509.MarshalPKCS8PrivateKey(v.m.ec)
		}
		ks.Versions = append(ks.Versions, vs)
	}
	return ks
}

func (vt *vault) restore(st stateFile) error {
	vt.seq = st.Seq
	for _, group := range []struct {
		in  []keyState
		out map[string]*key
	}{{st.Keys, vt.keys}, {st.Deleted, vt.deleted}} {
		for _, ks := range group.in {
			k, err := ks.key()
			if err != nil {
				return err
			}
			group.out[strings.ToLower(k.name)] = k
		}
	}
	return nil
}

func (ks keyState) key() (*key, error) {
	k := &key{name: ks.Name, versions: map[string]*version{}, policy: ks.Policy, deletedDate: ks.DeletedDate, purgeDate: ks.PurgeDate}
	for _, vs := range ks.Versions {
		m, err := vs.material()
		if err != nil {
			return nil, fmt.Errorf("key %s version %s: %w", ks.Name, vs.ID, err)
		}
		k.versions[vs.ID] = &version{
			id: vs.ID, seq: vs.Seq, m: m, ops: vs.Ops, enabled: vs.Enabled, nbf: vs.NBF, exp: vs.EXP,
			created: vs.Created, updated: vs.Updated, tags: vs.Tags, nearSent: vs.NearSent, expiredSent: vs.ExpiredSent,
		}
	}
	if k.latest = k.versions[ks.Latest]; k.latest == nil {
		return nil, fmt.Errorf("key %s: latest version %q missing", ks.Name, ks.Latest)
	}
	return k, nil
}

func (vs versionState) material() (*material, error) {
	m := &material{kty: vs.Kty, crv: vs.Crv, oct: vs.Oct}
	if family(vs.Kty) == "oct" {
		if len(vs.Oct) == 0 {
			return nil, errors.New("oct key without material")
		}
		return m, nil
	}
	priv, err := x509.ParsePKCS8PrivateKey(vs.PKCS8)
	if err != nil {
		return nil, err
	}
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		m.rsa = p
	case *ecdsa.PrivateKey:
		m.ec = p
	default:
		return nil, fmt.Errorf("unexpected private key %T", priv)
	}
	return m, nil
}
