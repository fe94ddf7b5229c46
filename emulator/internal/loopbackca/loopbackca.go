// Package loopbackca makes the emulators' TLS material: a throwaway CA and
// a certificate it signs for the loopback names, so that the real Azure
// SDK clients verify the emulators' TLS and never skip verification.
package loopbackca

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
	"time"

	"github.com/cmkd-io/cmkd/emulator/internal/atomicfile"
)

// validity is long enough that a CA file written once (the Key Vault
// emulator keeps it across restarts) never runs out under a developer.
const validity = 10 * 365 * 24 * time.Hour

// Certs is a CA and the loopback server certificate it signed.
type Certs struct {
	CAPEM    []byte // the CA certificate, for clients to trust
	CAKeyPEM []byte // the CA's key, for an emulator that keeps its CA
	Pool     *x509.CertPool
	Leaf     tls.Certificate // for localhost, 127.0.0.1 and ::1
}

// New signs a fresh loopback certificate under ca, or under a new CA named
// name when ca is nil. Keys never leave memory unless the caller writes
// CAKeyPEM.
func New(name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*Certs, error) {
	now := time.Now()
	if ca == nil {
		var err error
		if ca, caKey, err = newCA(name, now); err != nil {
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
	return &Certs{
		CAPEM:    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}),
		CAKeyPEM: pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}),
		Pool:     pool,
		Leaf:     leaf,
	}, nil
}

// WriteCA writes the CA certificate (public by nature) to path, whole or
// not at all, for clients in other processes to trust.
func (c *Certs) WriteCA(path string) error {
	if err := atomicfile.WriteFile(path, c.CAPEM, 0o644); err != nil {
		return fmt.Errorf("write ca file: %w", err)
	}
	return nil
}

// ParseCA reads back a CA certificate and its key, checking that they
// belong together and that the certificate is a CA.
func ParseCA(caPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, _ := pem.Decode(caPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		return nil, nil, errors.New("no PEM block")
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
		return nil, nil, errors.New("the key does not belong to the certificate")
	}
	if !ca.IsCA {
		return nil, nil, errors.New("the certificate is not a CA")
	}
	return ca, key, nil
}

func newCA(name string, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("ca key: %w", err)
	}
	ca := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(validity),
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
		NotAfter:     now.Add(validity),
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
