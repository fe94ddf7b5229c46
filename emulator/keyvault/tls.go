package keyvault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"time"

	"github.com/cmkd-io/cmkd/emulator/internal/atomicfile"
)

// certs is a throwaway CA and a leaf for the loopback names, made at
// Start so that clients can verify TLS without ever skipping verification.
type certs struct {
	caPEM    []byte
	caKeyPEM []byte
	pool     *x509.CertPool
	leaf     tls.Certificate
}

// loadOrNewCerts reuses the CA at caFile (with its key at caFile+".key")
// when both exist, so clients that trust the file keep trusting a restarted
// emulator; otherwise it makes a new CA and writes both files.
func loadOrNewCerts(caFile string) (*certs, error) {
	if caFile == "" {
		return newCerts(nil, nil)
	}
	caPEM, err1 := os.ReadFile(caFile)           // #nosec G304 -- the CA the emulator was told to use
	keyPEM, err2 := os.ReadFile(caFile + ".key") // #nosec G304 -- the CA the emulator was told to use
	if err1 == nil && err2 == nil {
		ca, key, err := parseCA(caPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("ca %s: %w (delete it and %s.key to make a new one)", caFile, err, caFile)
		}
		return newCerts(ca, key)
	}
	for _, err := range []error{err1, err2} {
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("read ca: %w", err) // never overwrite a CA we merely cannot read
		}
	}
	c, err := newCerts(nil, nil)
	if err != nil {
		return nil, err
	}
	// The key first: a crash between the two leaves a key without a
	// certificate, which the next start replaces, never a CA without a key.
	if err := atomicfile.WriteFile(caFile+".key", c.caKeyPEM, 0o600); err != nil {
		return nil, fmt.Errorf("write ca key: %w", err)
	}
	if err := atomicfile.WriteFile(caFile, c.caPEM, 0o644); err != nil {
		return nil, fmt.Errorf("write ca file: %w", err)
	}
	return c, nil
}

func parseCA(caPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(caPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, fmt.Errorf("no PEM block")
	}
	ca, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kb.Bytes)
	if err != nil {
		return nil, nil, err
	}
	if pub, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok || !pub.Equal(&key.PublicKey) {
		return nil, nil, fmt.Errorf("the key does not belong to the certificate")
	}
	if !ca.IsCA {
		return nil, nil, fmt.Errorf("the certificate is not a CA")
	}
	return ca, key, nil
}

// newCerts makes a leaf under ca, or under a new CA when ca is nil.
func newCerts(ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*certs, error) {
	now := time.Now()
	if ca == nil {
		var err error
		if ca, caKey, err = newCA(now); err != nil {
			return nil, err
		}
	}
	leaf, err := newLeaf(ca, caKey, now)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(caKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &certs{
		caPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		caKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		pool:     pool,
		leaf:     leaf,
	}, nil
}

func newCA(now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "cmkd Key Vault emulator CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("ca cert: %w", err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, nil, fmt.Errorf("parse ca: %w", err)
	}
	return caCert, caKey, nil
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("leaf key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("leaf cert: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}
