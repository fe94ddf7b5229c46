package keyvault

import (
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
)

// material is the secret part of one key version. It never leaves the
// emulator: responses carry only the public JWK.
type material struct {
	kty string // as the caller named it: RSA, RSA-HSM, EC, EC-HSM, oct, oct-HSM
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey     // P-256, P-384, P-521
	k1  *secp256k1.PrivateKey // P-256K
	crv string
	oct []byte
}

// jwk is a JSON Web Key as Key Vault writes and accepts it.
type jwk struct {
	Kid    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty"`
	KeyOps []string `json:"key_ops"`
	N      string   `json:"n,omitempty"`
	E      string   `json:"e,omitempty"`
	D      string   `json:"d,omitempty"`
	DP     string   `json:"dp,omitempty"`
	DQ     string   `json:"dq,omitempty"`
	QI     string   `json:"qi,omitempty"`
	P      string   `json:"p,omitempty"`
	Q      string   `json:"q,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      string   `json:"x,omitempty"`
	Y      string   `json:"y,omitempty"`
	K      string   `json:"k,omitempty"`
}

// family is the key type without the -HSM suffix, which is what decides
// the algorithms a key accepts.
func family(kty string) string { return strings.TrimSuffix(kty, "-HSM") }

func isHSM(kty string) bool { return strings.HasSuffix(kty, "-HSM") }

// canonicalKty is the kty the service stores: symmetric keys live only in
// an HSM, so a Managed HSM answers "oct-HSM" to a create or import of
// "oct" (recorded in azkeys' TestEncryptDecryptSymmetric).
func canonicalKty(kty string) string {
	if kty == "oct" {
		return "oct-HSM"
	}
	return kty
}

// createParams are the parts of a create request that shape the material.
type createParams struct {
	Kty            string `json:"kty"`
	KeySize        *int   `json:"key_size"`
	PublicExponent *int   `json:"public_exponent"`
	Crv            string `json:"crv"`
}

func generate(p createParams) (*material, error) {
	p.Kty = canonicalKty(p.Kty)
	switch family(p.Kty) {
	case "RSA":
		return generateRSA(p)
	case "EC":
		return generateEC(p)
	case "oct":
		return generateOct(p)
	}
	return nil, badParameter("The value of parameter kty (%s) is invalid.", p.Kty)
}

func generateRSA(p createParams) (*material, error) {
	size := 2048
	if p.KeySize != nil {
		size = *p.KeySize
	}
	if size != 2048 && size != 3072 && size != 4096 {
		return nil, badParameter("The value of parameter key_size (%d) is invalid for key type %s.", size, p.Kty)
	}
	if p.PublicExponent != nil && *p.PublicExponent != 65537 {
		return nil, badParameter("The value of parameter public_exponent (%d) is not supported.", *p.PublicExponent)
	}
	k, err := rsa.GenerateKey(rand.Reader, size)
	if err != nil {
		return nil, err
	}
	return &material{kty: p.Kty, rsa: k}, nil
}

func generateOct(p createParams) (*material, error) {
	size := 256
	if p.KeySize != nil {
		size = *p.KeySize
	}
	if size != 128 && size != 192 && size != 256 {
		return nil, badParameter("The value of parameter key_size (%d) is invalid for key type %s.", size, p.Kty)
	}
	k := make([]byte, size/8)
	_, _ = rand.Read(k)
	return &material{kty: p.Kty, oct: k}, nil
}

// like makes fresh material of the same type and size, for rotation.
func (m *material) like() (*material, error) {
	p := createParams{Kty: m.kty, Crv: m.crv}
	switch {
	case m.rsa != nil:
		n := m.rsa.N.BitLen()
		p.KeySize = &n
	case m.oct != nil:
		n := len(m.oct) * 8
		p.KeySize = &n
	}
	return generate(p)
}

// public renders the JWK the service returns: public parts only.
func (m *material) public(kid string, ops []string) jwk {
	j := jwk{Kid: kid, Kty: m.kty, KeyOps: ops}
	switch {
	case m.rsa != nil:
		j.N = b64(m.rsa.N.Bytes())
		j.E = b64(big.NewInt(int64(m.rsa.E)).Bytes())
	case m.ec != nil || m.k1 != nil:
		x, y := m.ecPoint()
		j.Crv, j.X, j.Y = m.crv, b64(x), b64(y)
	}
	return j
}

// defaultOps are the key_ops the service assigns when a create omits them.
func defaultOps(kty string) []string {
	switch family(kty) {
	case "RSA":
		return []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
	case "EC":
		return []string{"sign", "verify"}
	}
	return []string{"encrypt", "decrypt", "wrapKey", "unwrapKey"}
}
