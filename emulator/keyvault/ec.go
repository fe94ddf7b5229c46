package keyvault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"math/big"

	"github.com/decred/dcrd/dcrec/secp256k1/v4"
	k1ecdsa "github.com/decred/dcrd/dcrec/secp256k1/v4/ecdsa"
)

// ecCurve is an elliptic curve Key Vault offers. Key Vault pairs each
// curve with exactly one ES* algorithm, and writes coordinates, the
// private scalar and both halves of a signature with size bytes each.
type ecCurve struct {
	name string
	size int
	alg  string
	nist elliptic.Curve // nil for P-256K, which crypto/ecdsa does not have
}

var ecCurves = map[string]ecCurve{
	"P-256":  {name: "P-256", size: 32, alg: "ES256", nist: elliptic.P256()},
	"P-384":  {name: "P-384", size: 48, alg: "ES384", nist: elliptic.P384()},
	"P-521":  {name: "P-521", size: 66, alg: "ES512", nist: elliptic.P521()},
	"P-256K": {name: "P-256K", size: 32, alg: "ES256K"},
}

func generateEC(p createParams) (*material, error) {
	crv := p.Crv
	if crv == "" {
		crv = "P-256"
	}
	c, ok := ecCurves[crv]
	if !ok {
		return nil, badParameter("The value of parameter crv (%s) is invalid.", crv)
	}
	if c.nist == nil {
		k, err := secp256k1.GeneratePrivateKey()
		if err != nil {
			return nil, err
		}
		return &material{kty: p.Kty, k1: k, crv: crv}, nil
	}
	k, err := ecdsa.GenerateKey(c.nist, rand.Reader)
	if err != nil {
		return nil, err
	}
	return &material{kty: p.Kty, ec: k, crv: crv}, nil
}

// ecFromD builds EC material from the private scalar d, big-endian,
// refusing 0 and anything not below the curve order.
func ecFromD(kty, crv string, d []byte) (*material, bool) {
	c, ok := ecCurves[crv]
	if !ok || len(d) == 0 || len(d) > c.size {
		return nil, false
	}
	padded := make([]byte, c.size)
	copy(padded[c.size-len(d):], d)
	if c.nist == nil {
		var s secp256k1.ModNScalar
		if overflow := s.SetByteSlice(padded); overflow || s.IsZero() {
			return nil, false
		}
		return &material{kty: kty, k1: secp256k1.NewPrivateKey(&s), crv: crv}, true
	}
	k, err := ecdsa.ParseRawPrivateKey(c.nist, padded)
	if err != nil {
		return nil, false
	}
	return &material{kty: kty, ec: k, crv: crv}, true
}

// ecD is the private scalar in its fixed-size form.
func (m *material) ecD() []byte {
	if m.k1 != nil {
		b := m.k1.Key.Bytes()
		return b[:]
	}
	d, _ := m.ec.Bytes()
	return d
}

// ecPoint is the public point's X and Y, each of the curve's size.
func (m *material) ecPoint() (x, y []byte) {
	var raw []byte // 0x04 || X || Y
	if m.k1 != nil {
		raw = m.k1.PubKey().SerializeUncompressed()
	} else {
		raw, _ = m.ec.PublicKey.Bytes()
	}
	size := (len(raw) - 1) / 2
	return raw[1 : 1+size], raw[1+size:]
}

// ecSign signs digest and writes the signature as Key Vault does: r and s
// side by side, each of the curve's size, not ASN.1.
func (m *material) ecSign(digest []byte) ([]byte, error) {
	size := ecCurves[m.crv].size
	out := make([]byte, 2*size)
	if m.k1 != nil {
		sig := k1ecdsa.Sign(m.k1, digest)
		r, s := sig.R(), sig.S()
		r.PutBytesUnchecked(out[:size])
		s.PutBytesUnchecked(out[size:])
		return out, nil
	}
	r, s, err := ecdsa.Sign(rand.Reader, m.ec, digest)
	if err != nil {
		return nil, err
	}
	r.FillBytes(out[:size])
	s.FillBytes(out[size:])
	return out, nil
}

// ecVerify checks an r||s signature; any other shape is simply invalid.
func (m *material) ecVerify(digest, sig []byte) bool {
	size := ecCurves[m.crv].size
	if len(sig) != 2*size {
		return false
	}
	if m.k1 != nil {
		var r, s secp256k1.ModNScalar
		if r.SetByteSlice(sig[:size]) || s.SetByteSlice(sig[size:]) {
			return false // not below the order
		}
		return k1ecdsa.NewSignature(&r, &s).Verify(digest, m.k1.PubKey())
	}
	r, s := new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])
	return ecdsa.Verify(&m.ec.PublicKey, digest, r, s)
}
