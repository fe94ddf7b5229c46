package keyvault

import (
	"bytes"
	"crypto/rsa"
	"math/big"
)

// importMaterial builds private material from an imported JWK. The
// service needs the private parts; a public-only JWK is refused.
func importMaterial(j jwk, hsm bool) (*material, error) {
	kty := j.Kty
	if hsm && !isHSM(kty) {
		kty += "-HSM"
	}
	kty = canonicalKty(kty)
	switch family(kty) {
	case "RSA":
		return importRSA(j, kty)
	case "EC":
		return importEC(j, kty)
	case "oct":
		return importOct(j, kty)
	}
	return nil, badParameter("The value of parameter kty (%s) is invalid.", j.Kty)
}

func importRSA(j jwk, kty string) (*material, error) {
	parts := map[string]string{"n": j.N, "e": j.E, "d": j.D, "p": j.P, "q": j.Q}
	ints := map[string]*big.Int{}
	for _, f := range []string{"n", "e", "d", "p", "q"} {
		if parts[f] == "" {
			return nil, badParameter("Property key.%s is required to import an RSA key.", f)
		}
		b, err := unb64("key."+f, parts[f])
		if err != nil {
			return nil, err
		}
		ints[f] = new(big.Int).SetBytes(b)
	}
	if !ints["e"].IsInt64() || ints["e"].Int64() > 1<<31-1 {
		return nil, badParameter("Property key.e has invalid value.")
	}
	k := &rsa.PrivateKey{
		PublicKey: rsa.PublicKey{N: ints["n"], E: int(ints["e"].Int64())},
		D:         ints["d"],
		Primes:    []*big.Int{ints["p"], ints["q"]},
	}
	if err := k.Validate(); err != nil {
		return nil, badParameter("The imported RSA key is not valid.")
	}
	if bits := k.N.BitLen(); bits != 2048 && bits != 3072 && bits != 4096 {
		return nil, badParameter("The imported RSA key size (%d) is not supported.", bits)
	}
	k.Precompute()
	return &material{kty: kty, rsa: k}, nil
}

func importEC(j jwk, kty string) (*material, error) {
	if _, ok := ecCurves[j.Crv]; !ok {
		return nil, badParameter("The value of parameter crv (%s) is invalid.", j.Crv)
	}
	d, err := unb64("key.d", j.D)
	if err != nil || len(d) == 0 {
		return nil, badParameter("Property key.d is required to import an EC key.")
	}
	m, ok := ecFromD(kty, j.Crv, d)
	if !ok {
		return nil, badParameter("Property key.d has invalid value.")
	}
	// A public point sent along must be the one d makes.
	x, y := m.ecPoint()
	for _, f := range []struct {
		name, got string
		want      []byte
	}{{"key.x", j.X, x}, {"key.y", j.Y, y}} {
		if f.got == "" {
			continue
		}
		b, err := unb64(f.name, f.got)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(leftPad(b, len(f.want)), f.want) {
			return nil, badParameter("The imported EC key is not valid: %s does not match key.d.", f.name)
		}
	}
	return m, nil
}

// leftPad restores leading zero bytes a JWK writer may have dropped.
func leftPad(b []byte, size int) []byte {
	if len(b) >= size {
		return b
	}
	return append(make([]byte, size-len(b)), b...)
}

func importOct(j jwk, kty string) (*material, error) {
	k, err := unb64("key.k", j.K)
	if err != nil {
		return nil, err
	}
	if n := len(k); n != 16 && n != 24 && n != 32 {
		return nil, badParameter("Property key.k has invalid length (%d bytes).", n)
	}
	return &material{kty: kty, oct: k}, nil
}
