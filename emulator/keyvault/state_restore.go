package keyvault

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// versionIDRE is the shape newVersionID makes.
var versionIDRE = regexp.MustCompile(`^[0-9a-f]{32}$`)

// snapshot copies the vault into its file form; the caller holds mu.
func (vt *vault) snapshot(revoked bool) stateFile {
	st := stateFile{Format: stateFormat, Revoked: revoked, Seq: vt.seq, BackupKey: vt.backupKey, SoftDelete: clonePtr(vt.softDelete)}
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
		case v.m.k1 != nil:
			vs.D = v.m.ecD()
		}
		ks.Versions = append(ks.Versions, vs)
	}
	return ks
}

// restore rebuilds a vault, checking everything the operations rely on
// so that a hand-edited file fails at Start, not in the middle of a request.
func restore(st stateFile) (*vault, error) {
	vt := newVault()
	vt.seq = st.Seq
	if sd := st.SoftDelete; sd != nil {
		if err := validRetention(sd.RetentionDays); err != nil {
			return nil, err
		}
		vt.softDelete = clonePtr(sd)
	}
	if st.BackupKey != nil {
		if len(st.BackupKey) != backupKeySize {
			return nil, fmt.Errorf("backup key of %d bytes", len(st.BackupKey))
		}
		vt.backupKey = st.BackupKey
	}
	for _, group := range []struct {
		in  []keyState
		out map[string]*key
	}{{st.Keys, vt.keys}, {st.Deleted, vt.deleted}} {
		for _, ks := range group.in {
			k, err := ks.key()
			if err != nil {
				return nil, err
			}
			lower := strings.ToLower(k.name)
			if vt.keys[lower] != nil || vt.deleted[lower] != nil {
				return nil, fmt.Errorf("key %s appears twice", k.name)
			}
			group.out[lower] = k
			for _, v := range k.versions {
				vt.seq = max(vt.seq, v.seq) // new versions must sort after old ones
			}
		}
	}
	return vt, nil
}

func (ks keyState) key() (*key, error) {
	if !keyNameRE.MatchString(ks.Name) {
		return nil, fmt.Errorf("key name %q is invalid", ks.Name)
	}
	pol, err := ks.restoredPolicy()
	if err != nil {
		return nil, fmt.Errorf("key %s: %w", ks.Name, err)
	}
	k := &key{name: ks.Name, versions: map[string]*version{}, policy: pol, deletedDate: ks.DeletedDate, purgeDate: ks.PurgeDate}
	for _, vs := range ks.Versions {
		v, err := vs.version()
		if err != nil {
			return nil, fmt.Errorf("key %s version %q: %w", ks.Name, vs.ID, err)
		}
		if k.versions[v.id] != nil {
			return nil, fmt.Errorf("key %s: version %s appears twice", ks.Name, v.id)
		}
		k.versions[v.id] = v
	}
	if k.latest = k.versions[ks.Latest]; k.latest == nil {
		return nil, fmt.Errorf("key %s: latest version %q missing", ks.Name, ks.Latest)
	}
	return k, nil
}

// restoredPolicy checks a stored policy the way an update would.
func (ks keyState) restoredPolicy() (*policy, error) {
	if ks.Policy == nil {
		return nil, nil
	}
	p, err := normalizePolicy(*ks.Policy)
	if err != nil {
		return nil, errors.New("invalid rotation policy")
	}
	p.ID, p.Attributes.Created, p.Attributes.Updated = ks.Policy.ID, ks.Policy.Attributes.Created, ks.Policy.Attributes.Updated
	return &p, nil
}

func (vs versionState) version() (*version, error) {
	if !versionIDRE.MatchString(vs.ID) {
		return nil, errors.New("invalid version id")
	}
	m, err := vs.material()
	if err != nil {
		return nil, err
	}
	return &version{
		id: vs.ID, seq: vs.Seq, m: m, ops: vs.Ops, enabled: vs.Enabled, nbf: vs.NBF, exp: vs.EXP,
		created: vs.Created, updated: vs.Updated, tags: vs.Tags, nearSent: vs.NearSent, expiredSent: vs.ExpiredSent,
	}, nil
}

func (vs versionState) material() (*material, error) {
	switch family(vs.Kty) {
	case "oct":
		if n := len(vs.Oct); n != 16 && n != 24 && n != 32 {
			return nil, fmt.Errorf("oct key of %d bytes", n)
		}
		return &material{kty: vs.Kty, oct: vs.Oct}, nil
	case "EC":
		if vs.Crv == "P-256K" {
			m, ok := ecFromD(vs.Kty, vs.Crv, vs.D)
			if !ok || len(vs.PKCS8) != 0 {
				return nil, errors.New("invalid P-256K private key")
			}
			return m, nil
		}
		return vs.asymmetric()
	case "RSA":
		return vs.asymmetric()
	}
	return nil, fmt.Errorf("unknown kty %q", vs.Kty)
}

// asymmetric parses the private key and checks it is what kty and crv say.
func (vs versionState) asymmetric() (*material, error) {
	priv, err := x509.ParsePKCS8PrivateKey(vs.PKCS8)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", err)
	}
	m := &material{kty: vs.Kty}
	switch p := priv.(type) {
	case *rsa.PrivateKey:
		if bits := p.N.BitLen(); bits != 2048 && bits != 3072 && bits != 4096 {
			return nil, fmt.Errorf("RSA key of %d bits", bits)
		}
		m.rsa = p
	case *ecdsa.PrivateKey:
		if c, ok := ecCurves[vs.Crv]; !ok || c.nist != p.Curve {
			return nil, fmt.Errorf("EC key not on curve %q", vs.Crv)
		}
		m.ec, m.crv = p, vs.Crv
	default:
		return nil, fmt.Errorf("unexpected private key %T", priv)
	}
	if (m.rsa != nil) != (family(vs.Kty) == "RSA") || len(vs.D) != 0 {
		return nil, fmt.Errorf("private key does not match kty %s", vs.Kty)
	}
	return m, nil
}
