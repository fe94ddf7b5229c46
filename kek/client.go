package kek

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
)

// Client talks to any number of vaults. It is safe for concurrent use.
type Client struct {
	cfg     Config
	policy  vaultPolicy
	hsms    map[string]bool // Config.ManagedHSMs, canonical
	http    *http.Client
	metrics *metrics
	log     *slog.Logger

	mu      sync.Mutex
	vaults  map[string]*vault // by normalised vault URL
	cache   probeCache
	flights flights
}

// vault is one Key Vault: one SDK client (so the bearer challenge happens
// once) and one limiter.
type vault struct {
	url string
	kv  *azkeys.Client
	lim *limiter
}

// New returns a Client; vault connections are made lazily on first use.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{RootCAs: cfg.RootCAs, MinVersion: tls.VersionTLS12}
	// Keep a connection per in-flight call: new TLS handshakes under load
	// cost more than the call.
	tr.MaxIdleConnsPerHost = cfg.Limiter.MaxConcurrency
	hsms := map[string]bool{}
	for _, h := range cfg.ManagedHSMs {
		if u, err := cmkd.ParseVault(h); err == nil {
			hsms[u] = true
		}
	}
	return &Client{
		cfg:     cfg,
		policy:  newVaultPolicy(cfg.Policy),
		hsms:    hsms,
		http:    &http.Client{Transport: tr},
		metrics: newMetrics(cfg.Registerer),
		log:     cfg.Logger,
		vaults:  map[string]*vault{},
		cache:   newProbeCache(),
	}, nil
}

// VaultLimit is the calls per second a vault ("https://host" or host)
// allows: LimiterConfig.HSMLimit for a Managed HSM, else VaultLimit. It is
// what shares of a vault's capacity are measured against.
func (c *Client) VaultLimit(vault string) float64 {
	if c.ManagedHSM(vault) {
		return c.cfg.Limiter.HSMLimit
	}
	return c.cfg.Limiter.VaultLimit
}

// ManagedHSM reports whether a vault ("https://host" or host) is a Managed
// HSM: its host says so (cmkd.KeyID.ManagedHSM) or Config.ManagedHSMs
// lists it.
func (c *Client) ManagedHSM(vault string) bool {
	u, err := cmkd.ParseVault(vault)
	if err != nil {
		return false
	}
	return c.hsms[u] || (cmkd.KeyID{Vault: u}).ManagedHSM()
}

// Rate is the current call rate limit of a vault ("https://host" or host),
// 0 for a vault not used yet.
func (c *Client) Rate(vaultURL string) float64 {
	vault, err := cmkd.ParseVault(vaultURL)
	if err != nil {
		return 0
	}
	c.mu.Lock()
	v := c.vaults[vault]
	c.mu.Unlock()
	if v == nil {
		return 0
	}
	return v.lim.Rate()
}

// vault returns the client of a vault the policy allows; it is the one
// place vault clients are made, so no call reaches a vault outside it.
func (c *Client) vault(url string) (*vault, error) {
	if err := c.policy.check(url); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v := c.vaults[url]; v != nil {
		return v, nil
	}
	kv, err := azkeys.NewClient(url, c.cfg.Credential, &azkeys.ClientOptions{
		ClientOptions: azcore.ClientOptions{
			Transport: c.http,
			// Ours is the only retry loop, so every 429 reaches the limiter.
			Retry: policy.RetryOptions{MaxRetries: -1, TryTimeout: c.cfg.TryTimeout},
		},
		DisableChallengeResourceVerification: c.cfg.DisableChallengeResourceVerification,
	})
	if err != nil {
		return nil, fmt.Errorf("vault client %s: %w", url, err)
	}
	rate := c.metrics.rate.WithLabelValues(url)
	// A series at 0 from the start, so that increase() sees the first 429.
	c.metrics.throttled.WithLabelValues(url)
	lcfg := c.cfg.Limiter
	if c.ManagedHSM(url) {
		lcfg = lcfg.forHSM()
	}
	v := &vault{url: url, kv: kv, lim: newLimiter(lcfg, time.Now, rate.Set)}
	c.vaults[url] = v
	return v, nil
}

// do runs attempt until it succeeds, fails for good, or retries run out.
// Throttled attempts wait in the limiter's pause; unavailable ones back off.
func (c *Client) do(ctx context.Context, attempt func(context.Context) error) error {
	for n := 0; ; n++ {
		err := attempt(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		var ke *Error
		if !errors.As(err, &ke) || !ke.retryable() || n >= c.cfg.MaxRetries {
			c.logTransport(ke, n+1)
			return err
		}
		if ke.Kind == ErrUnavailable {
			if err := sleep(ctx, backoff(n, c.cfg.RetryDelay, c.cfg.MaxRetryDelay, uniform())); err != nil {
				return err
			}
		}
	}
}

// call makes one try of op through the vault's limiter and records it.
// It returns nil, ctx.Err() or a classified *Error.
func (c *Client) call(ctx context.Context, v *vault, op string, fn func(context.Context) error) error {
	bulk := isBulk(ctx)
	epoch, err := v.lim.acquire(ctx, bulk)
	if err != nil {
		return err
	}
	start := time.Now()
	err = fn(ctx)
	c.metrics.seconds.WithLabelValues(v.url, op).Observe(time.Since(start).Seconds())
	if err != nil && ctx.Err() != nil {
		v.lim.done(epoch, bulk, resultFailed, 0)
		return ctx.Err()
	}
	ke := classify(err)
	if ke != nil {
		ke.vault, ke.op = v.url, op
	}
	v.lim.done(epoch, bulk, limiterResult(ke), retryAfterOf(ke))
	c.metrics.calls.WithLabelValues(v.url, op, outcomeLabel(ke)).Inc()
	if ke == nil {
		return nil
	}
	if ke.Kind == ErrThrottled {
		c.metrics.throttled.WithLabelValues(v.url).Inc()
	}
	c.log.Debug("key vault call failed", slog.String("vault", v.url), slog.String("op", op),
		slog.String("outcome", outcomeLabel(ke)), slog.Int("status", ke.Status), slog.String("code", ke.Code))
	return ke
}

// logTransport tells the operator what a transport failure's message
// leaves out, once per call that gave up.
func (c *Client) logTransport(ke *Error, attempts int) {
	if ke == nil || !ke.transport {
		return
	}
	c.log.Warn("key vault unreachable", slog.String("vault", ke.vault), slog.String("op", ke.op),
		slog.Int("attempts", attempts), slog.String("err", ke.cause.Error()))
}

func limiterResult(e *Error) result {
	switch {
	case e == nil:
		return resultOK
	case e.Kind == ErrThrottled:
		return resultThrottled
	case e.Kind == ErrUnavailable:
		return resultFailed
	default:
		return resultOK
	}
}

func retryAfterOf(e *Error) time.Duration {
	if e == nil {
		return 0
	}
	return e.RetryAfter
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
