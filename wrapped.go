package cmkd

// Wrapped is a DEK wrapped under one key version: what the store keeps
// instead of the DEK, and all Key Vault needs to unwrap it.
type Wrapped struct {
	// KID is the versioned key id of the key version that wrapped the DEK.
	KID KeyID
	// Alg is the algorithm as Key Vault names it, e.g. RSA-OAEP-256, A256KW.
	Alg string
	// Value is the wrapped DEK.
	Value []byte
}

// Version is the key version that wrapped the DEK.
func (w Wrapped) Version() string { return w.KID.Version }
