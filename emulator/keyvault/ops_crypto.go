package keyvault

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1" // #nosec G505 -- Key Vault's RSA-OAEP is OAEP with SHA-1; the emulator must offer it
	"crypto/sha256"
	"crypto/subtle"
	"hash"
	"slices"
	"strconv"
)

type cryptoReq struct {
	Alg   string  `json:"alg"`
	Value *string `json:"value"`
	IV    string  `json:"iv"`
	AAD   string  `json:"aad"`
	Tag   string  `json:"tag"`
}

// cryptoResp is KeyOperationResult; a vault leaves out "alg", a Managed
// HSM names it (recorded in azkeys' TestEncryptDecrypt/MHSM).
type cryptoResp struct {
	Alg   string `json:"alg,omitempty"`
	Kid   string `json:"kid"`
	Value string `json:"value"`
	IV    string `json:"iv,omitempty"`
	Tag   string `json:"tag,omitempty"`
	AAD   string `json:"aad,omitempty"`
}

// cryptoInput is a decoded request: bytes, never logged.
type cryptoInput struct {
	alg            string
	value, iv, aad []byte
	tag            []byte
}

func cryptoHandler(op string) opFunc {
	return func(s *Server, c *call) (any, error) {
		in, err := decodeCrypto(c)
		if err != nil {
			return nil, err
		}
		kid, m, err := s.usable(c, op)
		if err != nil {
			return nil, err
		}
		out, err := runCrypto(op, m, in)
		if err != nil {
			return nil, err
		}
		out.Kid = kid
		if c.vw.hsm {
			out.Alg = in.alg
		}
		return out, nil
	}
}

func decodeCrypto(c *call) (cryptoInput, error) {
	var req cryptoReq
	if err := c.decode(&req); err != nil {
		return cryptoInput{}, err
	}
	if req.Alg == "" {
		return cryptoInput{}, badParameter("Property alg is required.")
	}
	if req.Value == nil {
		return cryptoInput{}, badParameter("Property value is required.")
	}
	in := cryptoInput{alg: req.Alg}
	var err error
	for _, f := range []struct {
		name, s string
		dst     *[]byte
	}{{"value", *req.Value, &in.value}, {"iv", req.IV, &in.iv}, {"aad", req.AAD, &in.aad}, {"tag", req.Tag, &in.tag}} {
		if *f.dst, err = unb64(f.name, f.s); err != nil {
			return cryptoInput{}, err
		}
	}
	return in, nil
}

// usable finds the version and refuses what Key Vault refuses: disabled
// versions, operations missing from key_ops, and for wrap, encrypt and
// sign only, keys outside nbf..exp (unwrap, decrypt and verify stay
// allowed so that expiry never locks data away).
func (s *Server) usable(c *call, op string) (string, *material, error) {
	s.vault.mu.Lock()
	defer s.vault.mu.Unlock()
	k, v, err := s.vault.find(c.name, c.ver)
	if err != nil {
		return "", nil, err
	}
	switch {
	case !v.enabled:
		return "", nil, forbidden("Operation "+op+" is not allowed on a disabled key.", "KeyDisabled")
	case !slices.Contains(v.ops, op):
		return "", nil, forbidden("Operation "+op+" is not permitted on this key.", "KeyOperationForbidden")
	case op != "wrapKey" && op != "encrypt" && op != "sign":
	case v.exp != nil && *v.exp <= c.now:
		return "", nil, forbidden("Operation "+op+" is not allowed on an expired key.", "KeyExpired")
	case v.nbf != nil && *v.nbf > c.now:
		return "", nil, forbidden("Operation "+op+" is not allowed on a key that is not yet valid.", "KeyNotYetValid")
	}
	return c.vw.kid(k, v), v.m, nil
}

func runCrypto(op string, m *material, in cryptoInput) (cryptoResp, error) {
	switch {
	case m.rsa != nil && isRSAAlg(in.alg):
		out, err := rsaCrypto(op, m.rsa, in)
		return cryptoResp{Value: b64(out)}, err
	case m.oct != nil && (op == "wrapKey" || op == "unwrapKey") && in.alg == aesAlg(len(m.oct), "KW"):
		out, err := octWrap(op, m.oct, in.value)
		return cryptoResp{Value: b64(out)}, err
	case m.oct != nil && (op == "encrypt" || op == "decrypt") && in.alg == aesAlg(len(m.oct), "GCM"):
		return octGCM(op, m.oct, in)
	case m.oct != nil && (op == "encrypt" || op == "decrypt") && in.alg == aesAlg(len(m.oct), "CBC"):
		return octCBC(op, m.oct, in, false)
	case m.oct != nil && (op == "encrypt" || op == "decrypt") && in.alg == aesAlg(len(m.oct), "CBCPAD"):
		return octCBC(op, m.oct, in, true)
	}
	return cryptoResp{}, badParameter("Algorithm %s is not supported for key type %s and operation %s.", in.alg, m.kty, op)
}

func isRSAAlg(alg string) bool { return alg == "RSA-OAEP" || alg == "RSA-OAEP-256" || alg == "RSA1_5" }

// aesAlg names the algorithm of a mode for an AES key of keyBytes:
// A128KW, A256GCM, A192CBCPAD...
func aesAlg(keyBytes int, mode string) string {
	return "A" + strconv.Itoa(keyBytes*8) + mode
}

func rsaCrypto(op string, k *rsa.PrivateKey, in cryptoInput) ([]byte, error) {
	seal := op == "wrapKey" || op == "encrypt"
	var out []byte
	var err error
	switch {
	// Key Vault still offers RSA1_5, so its emulator must; cmkd itself
	// wraps only with RSA-OAEP-256.
	case in.alg == "RSA1_5" && seal:
		//lint:ignore SA1019 emulating Key Vault's RSA1_5, see above
		out, err = rsa.EncryptPKCS1v15(rand.Reader, &k.PublicKey, in.value)
	case in.alg == "RSA1_5":
		//lint:ignore SA1019 emulating Key Vault's RSA1_5, see above
		out, err = rsa.DecryptPKCS1v15(nil, k, in.value)
	case seal:
		out, err = rsa.EncryptOAEP(oaepHash(in.alg), rand.Reader, &k.PublicKey, in.value, nil)
	default:
		out, err = rsa.DecryptOAEP(oaepHash(in.alg), nil, k, in.value, nil)
	}
	if err != nil && seal {
		return nil, badParameter("The value is too long for the key size and algorithm %s.", in.alg)
	}
	if err != nil {
		return nil, badParameter("The ciphertext could not be decrypted with algorithm %s.", in.alg)
	}
	return out, nil
}

func oaepHash(alg string) hash.Hash {
	if alg == "RSA-OAEP-256" {
		return sha256.New()
	}
	return sha1.New() // #nosec G401 -- see the import: RSA-OAEP as Key Vault defines it
}

func octWrap(op string, k, value []byte) ([]byte, error) {
	if op == "wrapKey" {
		out, err := aesKeyWrap(k, value)
		if err != nil {
			return nil, badParameter("The key to wrap must be a multiple of 8 bytes and at least 16 bytes long.")
		}
		return out, nil
	}
	out, err := aesKeyUnwrap(k, value)
	if err != nil {
		return nil, badParameter("The wrapped key could not be unwrapped.")
	}
	return out, nil
}

// octGCM encrypts with a fresh 12-byte IV unless the caller gave one, and
// returns IV and tag separately as Key Vault does.
func octGCM(op string, k []byte, in cryptoInput) (cryptoResp, error) {
	block, _ := aes.NewCipher(k) // k is 16, 24 or 32 bytes by construction
	g, _ := cipher.NewGCM(block)
	if op == "encrypt" {
		iv := in.iv
		if len(iv) == 0 {
			iv = make([]byte, g.NonceSize())
			_, _ = rand.Read(iv)
		}
		if len(iv) != g.NonceSize() {
			return cryptoResp{}, badParameter("Property iv must be %d bytes for %s.", g.NonceSize(), in.alg)
		}
		sealed := g.Seal(nil, iv, in.value, in.aad)
		ct, tag := sealed[:len(sealed)-g.Overhead()], sealed[len(sealed)-g.Overhead():]
		return cryptoResp{Value: b64(ct), IV: b64(iv), Tag: b64(tag), AAD: b64(in.aad)}, nil
	}
	if len(in.iv) != g.NonceSize() || len(in.tag) != g.Overhead() {
		return cryptoResp{}, badParameter("Properties iv and tag are required for %s.", in.alg)
	}
	plain, err := g.Open(nil, in.iv, append(append([]byte(nil), in.value...), in.tag...), in.aad)
	if err != nil {
		return cryptoResp{}, badParameter("The ciphertext could not be decrypted with algorithm %s.", in.alg)
	}
	return cryptoResp{Value: b64(plain)}, nil
}

// octCBC is AES-CBC as Managed HSM does it (recorded in azkeys'
// TestEncryptDecryptSymmetric): the caller brings the 16-byte IV, encrypt
// echoes it, and PAD adds PKCS#7 padding; without PAD the value must be
// whole blocks.
func octCBC(op string, k []byte, in cryptoInput, pad bool) (cryptoResp, error) {
	block, _ := aes.NewCipher(k) // k is 16, 24 or 32 bytes by construction
	if len(in.iv) != aes.BlockSize {
		return cryptoResp{}, badParameter("Property iv must be %d bytes for %s.", aes.BlockSize, in.alg)
	}
	if op == "encrypt" {
		plain := in.value
		if pad {
			n := aes.BlockSize - len(plain)%aes.BlockSize
			plain = append(slices.Clip(plain), bytes.Repeat([]byte{byte(n)}, n)...)
		}
		if len(plain)%aes.BlockSize != 0 {
			return cryptoResp{}, badParameter("The value must be a multiple of %d bytes for %s; %sPAD pads it.", aes.BlockSize, in.alg, in.alg)
		}
		out := make([]byte, len(plain))
		cipher.NewCBCEncrypter(block, in.iv).CryptBlocks(out, plain)
		return cryptoResp{Value: b64(out), IV: b64(in.iv)}, nil
	}
	undecryptable := badParameter("The ciphertext could not be decrypted with algorithm %s.", in.alg)
	// Whole blocks, and with PAD at least one: CBC of nothing is nothing,
	// but padding always adds a block.
	if len(in.value)%aes.BlockSize != 0 || pad && len(in.value) == 0 {
		return cryptoResp{}, undecryptable
	}
	out := make([]byte, len(in.value))
	cipher.NewCBCDecrypter(block, in.iv).CryptBlocks(out, in.value)
	if pad {
		var ok bool
		if out, ok = unpad(out); !ok {
			return cryptoResp{}, undecryptable
		}
	}
	return cryptoResp{Value: b64(out)}, nil
}

// unpad strips PKCS#7 padding, checking every padding byte.
func unpad(b []byte) ([]byte, bool) {
	n := int(b[len(b)-1])
	if n == 0 || n > aes.BlockSize || n > len(b) {
		return nil, false
	}
	if subtle.ConstantTimeCompare(b[len(b)-n:], bytes.Repeat([]byte{byte(n)}, n)) != 1 {
		return nil, false
	}
	return b[:len(b)-n], true
}
