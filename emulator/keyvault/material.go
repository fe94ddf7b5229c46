package keyvault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"math/big"
	"strings"
)

// material is the secret part of one key version. It never leaves the
// emulator: responses carry only the public JWK.
type material struct {
	kty string // as the caller named it: RSA, RSA-HSM, EC, EC-HSM, oct, oct-HSM
	rsa *rsa.PrivateKey
	ec  *ecdsa.PrivateKey
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

var curves = map[string]elliptic.Curve{"P-256": elliptic.P256(), "P-384": elliptic.P384(), "P-521": elliptic.P521()}

// createParams are the parts of a create request that shape the material.
type createParams struct {
	Kty            string `json:"kty"`
	KeySize        *int   `json:"key_size"`
	PublicExponent *int   `json:"public_exponent"`
	Crv            string `json:"crv"`
}

func generate(p createParams) (*material, error) {
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

func generateEC(p createParams) (*material, error) {
	crv := p.Crv
	if crv == "" {
		crv = "P-256"
	}
	c, ok := curves[crv]
	if !ok {
		return nil, badParameter("The value of parameter crv (%s) is invalid.", crv)
	}
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		return nil, err
	}
	return &material{kty: p.Kty, ec: k, crv: crv}, nil
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
	case m.ec != nil:
		raw, _ := m.ec.PublicKey.Bytes() // 0x04 || X || Y
		size := (len(raw) - 1) / 2
		j.Crv, j.X, j.Y = m.crv, b64(raw[1:1+size]), b64(raw[1+size:])
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
