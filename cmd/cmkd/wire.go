package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/config"
	"github.com/cmkd-io/cmkd/internal/redact"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// deps are the outside systems a command talks to, built from a Config.
type deps struct {
	cfg   *Config
	log   *slog.Logger
	reg   *prometheus.Registry
	cred  azcore.TokenCredential
	kek   *kek.Client
	store *store.Store
	nc    *nats.Conn
	js    jetstream.JetStream
}

// openDeps builds the Key Vault client and opens the store; withNATS also
// connects to NATS (commands that only read or write the store don't need it).
func openDeps(ctx context.Context, cfg *Config, log *slog.Logger, withNATS bool) (*deps, error) {
	d := &deps{cfg: cfg, log: log, reg: prometheus.NewRegistry()}
	if err := d.openKEK(); err != nil {
		return nil, err
	}
	if err := d.openStore(ctx); err != nil {
		return nil, err
	}
	if withNATS && cfg.NATS.URL != "" {
		if err := d.connectNATS(); err != nil {
			d.Close()
			return nil, err
		}
	}
	return d, nil
}

func (d *deps) openKEK() error {
	var reg prometheus.Registerer
	if d.reg != nil {
		reg = d.reg
	}
	kc, err := config.KEKConfig(d.cfg, d.log, reg)
	if err != nil {
		return err
	}
	d.cred = kc.Credential
	d.kek, err = kek.New(kc)
	return err
}

// policyFields are the config fields behind kek.VaultPolicy's.
var policyFields = map[string]string{
	"Vaults": "keyvault.vaults", "DNSSuffixes": "keyvault.dns_suffixes", "AllowLoopback": "keyvault.emulator",
}

// withPolicyHint adds, to an error for a vault outside the policy, the
// config field that would allow it.
func withPolicyHint(err error) error {
	var na *kek.VaultNotAllowedError
	if errors.As(err, &na) && policyFields[na.Field] != "" {
		return fmt.Errorf("%w (to allow it, change %s in the config)", err, policyFields[na.Field])
	}
	return err
}

func (d *deps) openStore(ctx context.Context) error {
	st, err := config.OpenStore(ctx, d.cfg, d.kek, d.log)
	if err != nil {
		return err
	}
	d.store = st
	return nil
}

func (d *deps) connectNATS() error {
	n := d.cfg.NATS
	opts := []nats.Option{nats.Name("cmkd " + d.cfg.Instance), nats.MaxReconnects(-1)}
	switch {
	case n.CredsFile != "":
		opts = append(opts, nats.UserCredentials(n.CredsFile))
	case n.NKeyFile != "":
		o, err := nats.NkeyOptionFromSeed(n.NKeyFile)
		if err != nil {
			return fmt.Errorf("nats.nkey_file: %w", err)
		}
		opts = append(opts, o)
	case n.Token != "":
		opts = append(opts, nats.Token(n.Token))
	case n.User != "":
		opts = append(opts, nats.UserInfo(n.User, n.Password))
	}
	if n.CAFile != "" {
		opts = append(opts, nats.RootCAs(n.CAFile))
	}
	if n.CertFile != "" {
		opts = append(opts, nats.ClientCert(n.CertFile, n.KeyFile))
	}
	nc, err := nats.Connect(n.URL, opts...)
	if err != nil {
		// The URL may carry a user and password or a token, and the
		// error may quote it.
		return fmt.Errorf("connect to nats at %s: %w (is it running? check nats.url)", redact.URL(n.URL), redact.Error(err))
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return err
	}
	d.nc, d.js = nc, js
	return nil
}

// Close closes what openDeps opened.
func (d *deps) Close() {
	if d.nc != nil {
		d.nc.Close()
	}
	if d.store != nil {
		// Close flushes the DEK use counts; losing them would let a DEK
		// encrypt past its limit unnoticed, so say so.
		if err := d.store.Close(); err != nil {
			d.log.Error("close store", slog.Any("err", err))
		}
	}
}

// tlsTrusting is an HTTP TLS config trusting pool (nil: the system roots).
func tlsTrusting(pool *x509.CertPool) *tls.Config {
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
