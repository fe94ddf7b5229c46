package envelope

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd/config"
	"github.com/cmkd-io/cmkd/store"
)

// Errors callers branch on, with errors.Is. Every error the Client returns
// wraps one of these when it applies; others are infrastructure failures
// (the database, Key Vault unreachable) or invalid arguments.
var (
	// ErrSealed: the tenant is sealed (its key was disabled, deleted or
	// its access revoked, or Key Vault stayed unreachable past the grace
	// period, or an operator sealed it). No data of the tenant can be read
	// or written until cmkd unseals it, which it does by itself once the
	// key works again. errors.As with *SealedError gives the reason and
	// since when. Answer the request as unavailable for this tenant, not
	// as a server error; retrying at once does not help.
	ErrSealed = store.ErrSealed
	// ErrUnknownTenant: no tenant has that id (never added with `cmkd
	// tenant add`, or removed). It also matches ErrNotFound under
	// errors.Is: test ErrUnknownTenant first to tell a missing tenant from
	// a missing record.
	ErrUnknownTenant = store.ErrUnknownTenant
	// ErrNotFound: Get or Delete found no record under that key (or the
	// tenant does not exist: see ErrUnknownTenant).
	ErrNotFound = store.ErrNotFound
	// ErrIntegrity: a ciphertext or record failed authentication: it was
	// tampered with or corrupted, it belongs to another tenant, it was
	// given other additional data than at Encrypt, or it names a data key
	// the tenant does not have (destroyed). Never retry; investigate.
	ErrIntegrity = store.ErrIntegrity
	// ErrTooLarge: the plaintext or record value exceeds the store's
	// limit (1 MiB).
	ErrTooLarge = store.ErrTooLarge
	// ErrInvalidKey: the record key is empty, too long or not UTF-8.
	ErrInvalidKey = store.ErrInvalidKey
	// ErrClosed: the Client was closed.
	ErrClosed = store.ErrClosed
)

// SealedError says which tenant is sealed, why (Reason) and since when
// (Since). It matches ErrSealed under errors.Is:
//
//	var se *envelope.SealedError
//	if errors.As(err, &se) { log.Printf("tenant %s sealed since %s: %s", se.Tenant, se.Since, se.Reason) }
type SealedError = store.SealedError

// Client encrypts and stores tenants' data under their keys. It is safe
// for concurrent use by any number of goroutines; open one per process and
// share it.
type Client struct {
	store *store.Store
}

// Option adjusts Open.
type Option func(*options)

type options struct {
	log *slog.Logger
	reg prometheus.Registerer
}

// WithLogger sends the Client's operational logs (Key Vault call failures,
// data key rotation) to log; by default they are discarded. They never
// contain key material or data.
func WithLogger(log *slog.Logger) Option { return func(o *options) { o.log = log } }

// WithMetrics registers the Key Vault client's metrics (cmkd_kv_*) with reg.
func WithMetrics(reg prometheus.Registerer) Option { return func(o *options) { o.reg = reg } }

// Open connects to cmkd's store and Key Vault as cfg describes: the config
// `cmkd run` uses (store, keyvault). It does not connect to NATS or start
// any background work; `cmkd run` watches the keys and seals tenants, and
// this Client sees what it decided through the store. cfg is not modified;
// unset fields take their defaults, and an invalid cfg is refused naming
// the field. Like every cmkd command, Open migrates a PostgreSQL schema
// that is behind unless store.migrate is false.
func Open(ctx context.Context, cfg *config.Config, opts ...Option) (*Client, error) {
	var o options
	for _, f := range opts {
		f(&o)
	}
	if cfg == nil {
		return nil, errors.New("envelope.Open: nil config")
	}
	c := *cfg
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("cmkd config: %w", err)
	}
	k, err := config.OpenKEK(&c, o.log, o.reg)
	if err != nil {
		return nil, err
	}
	st, err := config.OpenStore(ctx, &c, k, o.log)
	if err != nil {
		return nil, err
	}
	return &Client{store: st}, nil
}

// OpenFile loads the config file at path (with the CMKD_* environment
// overrides `cmkd run` applies) and opens it (see Open).
func OpenFile(ctx context.Context, path string, opts ...Option) (*Client, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	return Open(ctx, cfg, opts...)
}

// Close writes the data keys' use counts, zeroes the keys held in memory
// and closes the database. Calls after Close fail with ErrClosed; Close
// again does nothing.
func (c *Client) Close() error { return c.store.Close() }

// Encrypt encrypts plaintext for tenant and returns a self-describing
// ciphertext to keep wherever the application keeps its data. aad
// (additional authenticated data, may be nil) is not encrypted or stored
// but binds the ciphertext to a context, such as the table, row and column
// it belongs in: Decrypt needs the same aad, so a ciphertext copied to
// another row fails with ErrIntegrity. Fails with ErrSealed,
// ErrUnknownTenant or ErrTooLarge.
func (c *Client) Encrypt(ctx context.Context, tenant string, plaintext, aad []byte) ([]byte, error) {
	return c.store.Encrypt(ctx, tenant, plaintext, aad)
}

// Decrypt opens a ciphertext Encrypt made for tenant, given the same aad.
// Ciphertexts stay readable across key rotations and key changes: cmkd
// rewraps the tenant's data keys, never the ciphertexts. Fails with
// ErrSealed, ErrUnknownTenant or ErrIntegrity.
func (c *Client) Decrypt(ctx context.Context, tenant string, ciphertext, aad []byte) ([]byte, error) {
	return c.store.Decrypt(ctx, tenant, ciphertext, aad)
}

// Put encrypts value and stores it in cmkd under tenant and key, replacing
// any previous value. Fails with ErrSealed, ErrUnknownTenant,
// ErrInvalidKey or ErrTooLarge.
func (c *Client) Put(ctx context.Context, tenant, key string, value []byte) error {
	return c.store.Put(ctx, tenant, key, value)
}

// Get reads and decrypts the record under tenant and key. Fails with
// ErrNotFound when there is none, ErrSealed, ErrUnknownTenant or
// ErrIntegrity.
func (c *Client) Get(ctx context.Context, tenant, key string) ([]byte, error) {
	return c.store.Get(ctx, tenant, key)
}

// Delete removes the record under tenant and key; ErrNotFound if there
// was none.
func (c *Client) Delete(ctx context.Context, tenant, key string) error {
	return c.store.Delete(ctx, tenant, key)
}

// List returns, in order, up to limit of tenant's record keys that sort
// after after ("" from the start; limit ≤ 0: 1000). Pass the last key
// returned as after to read the next page; fewer than limit keys means
// there are no more.
func (c *Client) List(ctx context.Context, tenant, after string, limit int) ([]string, error) {
	return c.store.List(ctx, tenant, after, limit)
}
