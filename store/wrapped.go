package store

import "github.com/cmkd-io/cmkd/kek"

// Wrapped is a DEK wrapped by a Key Vault key version: KID is the versioned
// key id, Alg the algorithm Key Vault knows it by. It is kek's type, so that
// *kek.Client satisfies KEK as it is.
type Wrapped = kek.Wrapped
