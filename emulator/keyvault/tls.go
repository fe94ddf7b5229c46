package keyvault

import (
	"errors"
	"fmt"
	"os"

	"github.com/cmkd-io/cmkd/emulator/internal/atomicfile"
	"github.com/cmkd-io/cmkd/emulator/internal/loopbackca"
)

const caName = "cmkd Key Vault emulator CA"

// loadOrNewCerts reuses the CA at caFile (with its key at caFile+".key")
// when both exist, so clients that trust the file keep trusting a restarted
// emulator; otherwise it makes a new CA and writes both files.
func loadOrNewCerts(caFile string) (*loopbackca.Certs, error) {
	if caFile == "" {
		return loopbackca.New(caName, nil, nil)
	}
	caPEM, err1 := os.ReadFile(caFile)           // #nosec G304 -- the CA the emulator was told to use
	keyPEM, err2 := os.ReadFile(caFile + ".key") // #nosec G304 -- the CA the emulator was told to use
	if err1 == nil && err2 == nil {
		ca, key, err := loopbackca.ParseCA(caPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("ca %s: %w (delete it and %s.key to make a new one)", caFile, err, caFile)
		}
		return loopbackca.New(caName, ca, key)
	}
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read ca: %w", err) // never overwrite a CA we merely cannot read
		}
	}
	c, err := loopbackca.New(caName, nil, nil)
	if err != nil {
		return nil, err
	}
	// The key first: a crash between the two leaves a key without a
	// certificate, which the next start replaces, never a CA without a key.
	if err := atomicfile.WriteFile(caFile+".key", c.CAKeyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write ca key: %w", err)
	}
	if err := atomicfile.WriteFile(caFile, c.CAPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write ca file: %w", err)
	}
	return c, nil
}
