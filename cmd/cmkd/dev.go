package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd/config"
	"github.com/cmkd-io/cmkd/emulator/eventgrid"
	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/internal/redact"
	"github.com/cmkd-io/cmkd/kek"
)

const devToken = "dev"

type devFlags struct {
	dir      string
	vaults   int
	natsURL  string
	interval time.Duration
	logFmt   string
	throttle int
	rate     float64
	store    string
	schema   string
	hsm      bool
	// events is how Key Vault's events reach cmkd: eventsPull or
	// eventsWebhook; pushRetry and pushAttempts shape the push
	// subscription's retries (Event Grid's own by default).
	events       string
	pushRetry    []time.Duration
	pushAttempts int
	statusEG     bool
}

// runDev runs the whole system on loopback: embedded NATS, Key Vault and
// Event Grid emulators wired as in Azure, a SQLite store and the worker. It
// writes DIR/cmkd.yaml, an ordinary config every other command reads. On a
// restart over the same DIR it takes the same ports again, because key ids
// (and so every wrapped DEK) name the vault's address.
func runDev(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f devFlags
	fs := newFlags("dev", "dev [--data DIR] [--vaults N] [--nats URL] [--store postgres://…] [--events pull|webhook] [--status-eventgrid]", stderr)
	fs.StringVar(&f.dir, "data", "./cmkd-data", "directory for all state: SQLite store, NATS, emulator keys, cmkd.yaml")
	fs.IntVar(&f.vaults, "vaults", 1, "number of emulated vaults")
	fs.StringVar(&f.natsURL, "nats", "", "use this NATS server instead of an embedded one")
	fs.StringVar(&f.store, "store", "", "use this PostgreSQL database (postgres://… or key=value) instead of SQLite in --data")
	fs.StringVar(&f.schema, "store-schema", "", "PostgreSQL schema for --store (default cmkd)")
	fs.DurationVar(&f.interval, "probe-interval", 2*time.Second, "how often every key in use is probed")
	fs.StringVar(&f.logFmt, "log", "text", "log format: text or json")
	fs.IntVar(&f.throttle, "kv-throttle", keyvault.DefaultThrottleLimit, "Key Vault operations the emulated vault allows per 10 s, as Azure does (negative: no limit)")
	fs.Float64Var(&f.rate, "kv-rate", 0, "Key Vault calls per second cmkd starts at per vault (0: kek's default)")
	fs.BoolVar(&f.hsm, "hsm", false, "also emulate a Managed HSM (oct-HSM keys, AES key wrap)")
	fs.StringVar(&f.events, "events", eventsPull, "how Key Vault events reach cmkd: pull (Event Grid namespace topic) or webhook (system topic push to cmkd's webhook)")
	retry := fs.String("push-retry", "", "with --events webhook: waits between delivery attempts, e.g. 1s,5s (default Event Grid's: 10s, 30s, 1m, 5m, …)")
	fs.IntVar(&f.pushAttempts, "push-max-attempts", eventgridtopic.DefaultMaxDeliveryAttempts, "with --events webhook: delivery attempts before an event is dead-lettered (1–30)")
	fs.BoolVar(&f.statusEG, "status-eventgrid", false, "also publish status events to an emulated Event Grid topic (status.eventgrid)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if f.events != eventsPull && f.events != eventsWebhook {
		return usagef("dev --events %q: want %s or %s", f.events, eventsPull, eventsWebhook)
	}
	if f.pushAttempts < 1 || f.pushAttempts > 30 {
		return usagef("dev --push-max-attempts %d: want 1 to 30, as Event Grid allows", f.pushAttempts)
	}
	var err error
	if f.pushRetry, err = parseRetrySchedule(*retry); err != nil {
		return usagef("dev: %v", err)
	}
	if fs.NArg() > 0 || f.vaults < 1 {
		return usagef("dev takes no arguments and --vaults ≥ 1")
	}
	if f.schema != "" && f.store == "" {
		return usagef("dev: --store-schema needs --store")
	}
	if err := devStore(f).Validate(); err != nil {
		return usagef("dev --store: %v", err)
	}
	log, err := newLogger(stderr, f.logFmt)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w (choose another with --data)", f.dir, err)
	}
	prev := previousDev(f.dir)
	env, err := startDevEnv(f, prev, log)
	if err != nil {
		return err
	}
	defer func() {
		if err := env.close(); err != nil {
			log.Warn("stop emulators", slog.Any("err", err))
		}
	}()
	cfg := env.config(f)
	path := filepath.Join(f.dir, "cmkd.yaml")
	if err := writeConfig(path, cfg); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	printDev(stdout, path, cfg)
	if env.systemTopic != nil {
		go env.subscribeWebhook(ctx, f, log)
	}
	return serveWorker(ctx, cfg, log)
}

// devEnv is what `cmkd dev` runs besides the worker.
type devEnv struct {
	dir     string
	nats    *server.Server // nil with --nats
	natsURL string
	eg      *eventgrid.Server
	// systemTopic pushes Key Vault's events to the webhook, at webhook
	// with secret, with --events webhook; statusTopic receives status
	// events with --status-eventgrid. Nil otherwise.
	systemTopic, statusTopic *eventgridtopic.Server
	webhook, secret          string
	kvs                      []*keyvault.Server
	hsm                      *keyvault.Server // nil without --hsm
	// ops is the operator's vault, holding the platform key: apart from
	// the customers' vaults, so revoking a customer's vault leaves it be.
	ops  *keyvault.Server
	http string
	api  string // the data API's address: anonymous, as nowhere else
	// platform is the platform layer's key, in ops.
	platform string
}

func startDevEnv(f devFlags, prev *Config, log *slog.Logger) (*devEnv, error) {
	env := &devEnv{dir: f.dir, natsURL: f.natsURL}
	ok := false
	defer func() {
		if !ok {
			_ = env.close() // the start's own error says what went wrong
		}
	}()
	if env.natsURL == "" {
		if err := env.startNATS(portOf(prev, func(c *Config) string { return c.NATS.URL })); err != nil {
			return nil, err
		}
	}
	eg, err := eventgrid.Start(eventgrid.Config{
		Addr:   addrOf(prev, func(c *Config) string { return c.Sources.EventGrid.Endpoint }),
		CAFile: filepath.Join(f.dir, "eventgrid-ca.pem"), Key: devEGKey, AllowBearer: true,
		Topics: map[string][]string{devTopic: {devSubscription}},
		Logger: log.With("emulator", "eventgrid"),
	})
	if err != nil {
		return nil, fmt.Errorf("start event grid emulator: %w (another cmkd dev on %s? stop it or use --data)", err, f.dir)
	}
	env.eg = eg
	if f.events == eventsWebhook {
		if err := env.startSystemTopic(f, prev, log); err != nil {
			return nil, err
		}
	}
	if f.statusEG {
		if err := env.startStatusTopic(f, prev, log); err != nil {
			return nil, err
		}
	}
	for i := range f.vaults {
		kv, err := keyvault.Start(keyvault.Config{
			Addr:      addrOf(prev, func(c *Config) string { return nth(c.Dev.Vaults, i) }),
			CAFile:    filepath.Join(f.dir, "keyvault-ca.pem"),
			StateFile: filepath.Join(f.dir, fmt.Sprintf("keyvault-%d.json", i)),
			Token:     devToken, VaultName: fmt.Sprintf("dev%d", i), ThrottleLimit: f.throttle,
			// As a production vault holding customer-managed keys must.
			PurgeProtection: true,
			Sink:            env.sink(log),
			Logger:          log.With("emulator", "keyvault", "vault", i),
		})
		if err != nil {
			return nil, fmt.Errorf("start key vault emulator %d: %w", i, err)
		}
		env.kvs = append(env.kvs, kv)
	}
	if f.hsm {
		if env.hsm, err = keyvault.Start(keyvault.Config{
			Addr:      addrOf(prev, func(c *Config) string { return c.Dev.HSM }),
			CAFile:    filepath.Join(f.dir, "keyvault-ca.pem"),
			StateFile: filepath.Join(f.dir, "managedhsm.json"),
			Token:     devToken, VaultName: "devhsm", ManagedHSM: true, PurgeProtection: true,
			Sink:   env.sink(log),
			Logger: log.With("emulator", "managedhsm"),
		}); err != nil {
			return nil, fmt.Errorf("start managed hsm emulator: %w", err)
		}
	}
	if env.ops, err = keyvault.Start(keyvault.Config{
		Addr:      addrOf(prev, func(c *Config) string { return c.Dev.PlatformVault }),
		CAFile:    filepath.Join(f.dir, "keyvault-ca.pem"),
		StateFile: filepath.Join(f.dir, "keyvault-platform.json"),
		Token:     devToken, VaultName: "devops", ThrottleLimit: f.throttle, PurgeProtection: true,
		Sink:   env.sink(log),
		Logger: log.With("emulator", "keyvault", "vault", "platform"),
	}); err != nil {
		return nil, fmt.Errorf("start the platform key's vault emulator: %w", err)
	}
	if env.platform, err = ensurePlatformKey(env.ops); err != nil {
		return nil, err
	}
	env.http = addrOf(prev, func(c *Config) string { return c.HTTP.Listen })
	if env.http == "127.0.0.1:0" {
		if env.http, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	env.api = addrOf(prev, func(c *Config) string { return c.API.Listen })
	if env.api == "127.0.0.1:0" {
		if env.api, err = freeAddr(); err != nil {
			return nil, err
		}
	}
	ok = true
	return env, nil
}

func (e *devEnv) startNATS(port int) error {
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: filepath.Join(e.dir, "nats"),
		NoSigs: true, NoLog: true,
	})
	if err != nil {
		return fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return fmt.Errorf("embedded nats did not start on port %d (in use? use --nats or another --data)", port)
	}
	e.nats, e.natsURL = ns, ns.ClientURL()
	return nil
}

func (e *devEnv) close() error {
	var errs []error
	for _, kv := range e.kvs {
		errs = append(errs, kv.Close())
	}
	if e.hsm != nil {
		errs = append(errs, e.hsm.Close())
	}
	if e.ops != nil {
		errs = append(errs, e.ops.Close())
	}
	for _, t := range []*eventgridtopic.Server{e.systemTopic, e.statusTopic} {
		if t != nil {
			errs = append(errs, t.Close())
		}
	}
	if e.eg != nil {
		errs = append(errs, e.eg.Close())
	}
	if e.nats != nil {
		e.nats.Shutdown()
		e.nats.WaitForShutdown()
	}
	return errors.Join(errs...)
}

func (e *devEnv) config(f devFlags) *Config {
	var vaults, hsms []string
	for _, kv := range e.kvs {
		vaults = append(vaults, kv.URL())
	}
	dev := DevConfig{KeyVault: vaults[0], Vaults: vaults, PlatformVault: e.ops.URL()}
	vaults = append(vaults, dev.PlatformVault)
	if e.hsm != nil {
		dev.HSM = e.hsm.URL()
		vaults, hsms = append(vaults, dev.HSM), []string{dev.HSM}
	}
	c := &Config{
		Instance: "dev",
		Store:    devStore(f),
		NATS:     NATSConfig{URL: e.natsURL, CreateStreams: true, StatusMaxAge: 90 * 24 * time.Hour},
		KeyVault: KVConfig{
			Credential: "static", Token: devToken, CAFile: filepath.Join(f.dir, "keyvault-ca.pem"),
			Emulator: true, Vaults: vaults, InitialRate: f.rate, VaultLimit: devVaultLimit(f.throttle),
			PlatformKey: e.platform, ManagedHSMs: hsms,
		},
		Sources: Sources{EventGrid: EventGridSource{
			Endpoint: e.eg.URL(), Topic: devTopic, Subscription: devSubscription, Key: devEGKey,
			CAFile: filepath.Join(f.dir, "eventgrid-ca.pem"),
		}},
		Worker: WorkerConf{ProbeInterval: f.interval},
		HTTP:   HTTPConfig{Listen: e.http},
		API:    APIConfig{Listen: e.api, Anonymous: true},
		Dev:    dev,
	}
	if e.systemTopic != nil {
		c.Sources = Sources{Webhook: WebhookSource{Listen: e.webhook, Path: devWebhookPath, SharedSecret: e.secret}}
		c.Dev.SystemTopic = e.systemTopic.URL()
	}
	if e.statusTopic != nil {
		c.Status.EventGrid = config.EventGridSink{Endpoint: e.statusTopic.URL(), Key: devEGKey, CAFile: filepath.Join(f.dir, devStatusCAFile)}
	}
	if e.systemTopic != nil || e.statusTopic != nil {
		c.Dev.DeadLetters = filepath.Join(f.dir, devDeadLetters)
	}
	return c
}

// devPlatformKey names the platform layer's key `cmkd dev` makes.
const devPlatformKey = "cmkd-platform"

// ensurePlatformKey makes the platform layer's key in kv, once: a restart
// over the same directory finds it in the emulator's state.
func ensurePlatformKey(kv *keyvault.Server) (string, error) {
	az, err := kv.Client(kek.StaticToken(devToken), policy.RetryOptions{MaxRetries: -1})
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	if _, err := az.GetKey(ctx, devPlatformKey, "", nil); err == nil {
		return kv.URL() + "/keys/" + devPlatformKey, nil
	}
	_, err = az.CreateKey(ctx, devPlatformKey, azkeys.CreateKeyParameters{
		Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](3072),
		KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationWrapKey), to.Ptr(azkeys.KeyOperationUnwrapKey)},
	}, nil)
	if err != nil {
		return "", fmt.Errorf("create the platform key %s in %s: %w", devPlatformKey, kv.URL(), err)
	}
	return kv.URL() + "/keys/" + devPlatformKey, nil
}

const devEGKey = "dev-key"

// devStore is the store `cmkd dev` uses: a SQLite file in its directory,
// or the PostgreSQL database --store names.
func devStore(f devFlags) StoreConfig {
	if f.store != "" {
		return StoreConfig{Driver: "postgres", DSN: f.store, Schema: f.schema}
	}
	return StoreConfig{Driver: "sqlite", DSN: filepath.Join(f.dir, "cmkd.db")}
}

// devVaultLimit is the calls per second the emulated vaults allow: what the
// probe budget is a share of. Without a throttle, Key Vault's own figure.
func devVaultLimit(throttle int) float64 {
	if throttle <= 0 {
		return 0 // kek's default
	}
	return float64(throttle) / keyvault.DefaultThrottleWindow.Seconds()
}

// previousDev reads the config an earlier `cmkd dev` wrote in dir, if any.
func previousDev(dir string) *Config {
	c, err := loadConfig(filepath.Join(dir, "cmkd.yaml"))
	if err != nil {
		return nil
	}
	return c
}

// addrOf is host:port of the URL get reads from prev, or 127.0.0.1:0.
func addrOf(prev *Config, get func(*Config) string) string {
	if prev != nil {
		s := get(prev)
		if u, err := url.Parse(s); err == nil && u.Host != "" {
			return u.Host
		}
		if _, _, err := net.SplitHostPort(s); err == nil {
			return s
		}
	}
	return "127.0.0.1:0"
}

func portOf(prev *Config, get func(*Config) string) int {
	_, p, err := net.SplitHostPort(addrOf(prev, get))
	if err != nil || p == "0" {
		return -1 // a free one
	}
	n, _ := strconv.Atoi(p)
	return n
}

func nth(s []string, i int) string {
	if i < len(s) {
		return s[i]
	}
	return ""
}

// freeAddr finds a free loopback port. Another process could take it before
// we bind it; then the worker fails at start with the address in the error.
func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// devEventsLine says how Key Vault's events reach cmkd, and where status
// events go besides NATS.
func devEventsLine(cfg *Config) string {
	line := fmt.Sprintf("%s  topic %q → subscription %q (pull)", cfg.Sources.EventGrid.Endpoint, devTopic, devSubscription)
	if cfg.Dev.SystemTopic != "" {
		line = fmt.Sprintf("system topic %s → push to http://%s%s (dead letters in %s)",
			cfg.Dev.SystemTopic, cfg.Sources.Webhook.Listen, cfg.Sources.Webhook.Path, cfg.Dev.DeadLetters)
	}
	if ep := cfg.Status.EventGrid.Endpoint; ep != "" {
		line += fmt.Sprintf("\n  status topic %s   (status events, besides NATS; cmkd audit tail --eventgrid)", ep)
	}
	return line
}

func printDev(w io.Writer, path string, cfg *Config) {
	fmt.Fprintf(w, `cmkd dev is running on loopback (Ctrl-C stops it; its state stays in %[1]s and the store below).

  config       %[2]s   (every command reads it; or set CMKD_CONFIG)
  Key Vault    %[3]s
  platform key %[11]s   (the operator's vault; every tenant's data is under it)
  Event Grid   %[4]s
  NATS         %[7]s  (status stream CMKD_STATUS)
  store        %[9]s %[10]s
  metrics      http://%[8]s/metrics

Next, in another terminal:
  cmkd tenant add acme                         # the platform layer alone
  echo hello | cmkd put acme greeting && cmkd get acme greeting
  cmkd vault create-key cmk
  cmkd tenant set-key acme --key %[3]s/keys/cmk   # the customer's key: a second layer, in place
  cmkd audit tail --follow        # watch status events
  cmkd vault rotate cmk           # → rewrap.started, rewrap.completed, version.retired
  cmkd vault disable cmk          # → sealed within a probe interval; cmkd get exits 3
  cmkd vault enable cmk           # → unsealed
  cmkd vault disable --vault %[12]s cmkd-platform   # every tenant sealed: platform_key_disabled

Your service, over HTTP (anonymous here only; docs/api/openapi.yaml):
  curl -s -X POST http://%[13]s/v1/tenants/acme/encrypt -d '{"plaintext":"aGVsbG8="}'
  cmkd tenant destroy acme --yes  # crypto-shredding: nothing of acme's can be read again
`, filepath.Dir(path), path, cfg.Dev.KeyVault, devEventsLine(cfg), devTopic, devSubscription,
		redact.URL(cfg.NATS.URL), cfg.HTTP.Listen, cfg.Store.Driver, redact.URL(cfg.Store.DSN), cfg.KeyVault.PlatformKey,
		cfg.Dev.PlatformVault, cfg.API.Listen)
	if h := cfg.Dev.HSM; h != "" {
		fmt.Fprintf(w, `
Managed HSM    %[1]s
  cmkd vault create-key --vault %[1]s --kty oct-HSM hsmkey
  cmkd tenant add bank --key %[1]s/keys/hsmkey   # AES key wrap (A256KW) in the HSM
`, h)
	}
}
