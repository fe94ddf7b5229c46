package keyvault

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	_ "crypto/sha256" // RSASSA-PSS hashes with the hashes sigAlgs names
	_ "crypto/sha512"
)

// sigAlg is a JWS algorithm as Key Vault applies it: to a digest the
// caller already made with hash, never to the message itself.
type sigAlg struct {
	family string // the key type it needs: RSA or EC
	hash   crypto.Hash
	pss    bool   // RSASSA-PSS with a salt as long as the hash (RFC 7518)
	crv    string // EC: the one curve it goes with
}

var sigAlgs = map[string]sigAlg{
	"RS256":  {family: "RSA", hash: crypto.SHA256},
	"RS384":  {family: "RSA", hash: crypto.SHA384},
	"RS512":  {family: "RSA", hash: crypto.SHA512},
	"PS256":  {family: "RSA", hash: crypto.SHA256, pss: true},
	"PS384":  {family: "RSA", hash: crypto.SHA384, pss: true},
	"PS512":  {family: "RSA", hash: crypto.SHA512, pss: true},
	"ES256":  {family: "EC", hash: crypto.SHA256, crv: "P-256"},
	"ES384":  {family: "EC", hash: crypto.SHA384, crv: "P-384"},
	"ES512":  {family: "EC", hash: crypto.SHA512, crv: "P-521"},
	"ES256K": {family: "EC", hash: crypto.SHA256, crv: "P-256K"},
}

// unsupportedSigAlgs are in the REST specification but not done here:
// HMAC (HS*) needs Managed HSM oct keys, RSNULL is reserved.
var unsupportedSigAlgs = map[string]bool{"HS256": true, "HS384": true, "HS512": true, "RSNULL": true}

type signReq struct {
	Alg   string  `json:"alg"`
	Value *string `json:"value"` // the digest
}

type verifyReq struct {
	Alg       string  `json:"alg"`
	Digest    *string `json:"digest"`
	Signature *string `json:"value"`
}

// verifyResp is KeyVerifyResult: {"value": true} and nothing else.
type verifyResp struct {
	Value bool `json:"value"`
}

func lookupSigAlg(name string) (sigAlg, error) {
	switch alg, ok := sigAlgs[name]; {
	case name == "":
		return sigAlg{}, badParameter("Property alg is required.")
	case unsupportedSigAlgs[name]:
		return sigAlg{}, badParameter("Algorithm %s is not supported by this emulator.", name)
	case !ok:
		return sigAlg{}, badParameter("The value of parameter alg (%s) is invalid.", name)
	default:
		return alg, nil
	}
}

// fits refuses a key the algorithm cannot use, in the words Key Vault
// uses for a curve mismatch.
func (a sigAlg) fits(name, kid string, m *material) error {
	if f := family(m.kty); f != a.family {
		return badParameter("Key and signing algorithm are incompatible. Key %s is of type '%s', and algorithm '%s' can only be used with key type '%s'.",
			kid, f, name, a.family)
	}
	if a.family == "EC" && m.crv != a.crv {
		return badParameter("Key and signing algorithm are incompatible. Key %s uses curve '%s', and algorithm '%s' can only be used with curve '%s'.",
			kid, m.crv, name, a.crv)
	}
	return nil
}

// checkDigest refuses a digest of the wrong size for the algorithm's hash.
func (a sigAlg) checkDigest(name, field string, digest []byte) error {
	if len(digest) != a.hash.Size() {
		return badParameter("Invalid length of '%s': %d bytes. %s requires %d bytes, encoded with base64url.", field, len(digest), name, a.hash.Size())
	}
	return nil
}

func (s *Server) sign(c *call) (any, error) {
	var req signReq
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	alg, err := lookupSigAlg(req.Alg)
	if err != nil {
		return nil, err
	}
	if req.Value == nil {
		return nil, badParameter("Property value is required.")
	}
	digest, err := unb64("value", *req.Value)
	if err != nil {
		return nil, err
	}
	kid, m, err := s.usable(c, "sign")
	if err != nil {
		return nil, err
	}
	if err := alg.fits(req.Alg, kid, m); err != nil {
		return nil, err
	}
	if err := alg.checkDigest(req.Alg, "value", digest); err != nil {
		return nil, err
	}
	sig, err := m.sign(alg, digest)
	if err != nil {
		return nil, err
	}
	out := cryptoResp{Kid: kid, Value: b64(sig)}
	if c.vw.hsm {
		out.Alg = req.Alg
	}
	return out, nil
}

func (s *Server) verify(c *call) (any, error) {
	var req verifyReq
	if err := c.decode(&req); err != nil {
		return nil, err
	}
	alg, err := lookupSigAlg(req.Alg)
	if err != nil {
		return nil, err
	}
	if req.Digest == nil {
		return nil, badParameter("Property digest is required.")
	}
	if req.Signature == nil {
		return nil, badParameter("Property value is required.")
	}
	digest, err := unb64("digest", *req.Digest)
	if err != nil {
		return nil, err
	}
	sig, err := unb64("value", *req.Signature)
	if err != nil {
		return nil, err
	}
	kid, m, err := s.usable(c, "verify")
	if err != nil {
		return nil, err
	}
	if err := alg.fits(req.Alg, kid, m); err != nil {
		return nil, err
	}
	if err := alg.checkDigest(req.Alg, "digest", digest); err != nil {
		return nil, err
	}
	return verifyResp{Value: m.verify(alg, digest, sig)}, nil
}

// pssOpts is RFC 7518's PS256/384/512: the salt is as long as the hash,
// when signing and when verifying.
var pssOpts = &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash}

func (m *material) sign(a sigAlg, digest []byte) ([]byte, error) {
	switch {
	case m.rsa != nil && a.pss:
		return rsa.SignPSS(rand.Reader, m.rsa, a.hash, digest, pssOpts)
	case m.rsa != nil:
		return rsa.SignPKCS1v15(nil, m.rsa, a.hash, digest)
	default:
		return m.ecSign(digest)
	}
}

func (m *material) verify(a sigAlg, digest, sig []byte) bool {
	switch {
	case m.rsa != nil && a.pss:
		return rsa.VerifyPSS(&m.rsa.PublicKey, a.hash, digest, sig, pssOpts) == nil
	case m.rsa != nil:
		return rsa.VerifyPKCS1v15(&m.rsa.PublicKey, a.hash, digest, sig) == nil
	default:
		return m.ecVerify(digest, sig)
	}
}
