package throughput

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/bench"
	egemu "github.com/cmkd-io/cmkd/emulator/eventgrid"
	cevents "github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/handlers"
	"github.com/cmkd-io/cmkd/worker"
)

// Names of the emulated Event Grid namespace topic and its subscription.
const (
	topic    = "keyvault-events"
	sub      = "cmkd"
	egKey    = "bench-shared-access-key"
	instance = "bench-events"
)

// rig is everything the phases share: the Key Vault emulator with keys and
// tenants, the Event Grid emulator, embedded NATS and a running worker.
type rig struct {
	env  *bench.Env
	eg   *egemu.Server
	nats *bench.NATS
	keys []key
	dec  *cevents.Decoder
	log  *slog.Logger

	w       *worker.Worker
	reg     *prometheus.Registry
	stopW   context.CancelFunc
	exitedW chan error
}

func logger(o bench.Options) *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// newRig starts it all; close stops what was started, also on error.
func newRig(ctx context.Context, o bench.Options, nkeys int) (r *rig, err error) {
	r = &rig{log: logger(o)}
	rr := r
	defer func() {
		if err != nil {
			rr.close() // r is nil by now: every error path returns nil
		}
	}()
	if r.env, err = bench.NewEnv(ctx, bench.EnvConfig{Dir: o.Dir, Logger: r.log}); err != nil {
		return nil, err
	}
	if r.keys, err = makeKeys(ctx, r.env, nkeys); err != nil {
		return nil, err
	}
	if err = addTenants(ctx, r.env, r.keys); err != nil {
		return nil, err
	}
	r.eg, err = egemu.Start(egemu.Config{Key: egKey, Topics: map[string][]string{topic: {sub}}, Logger: r.log})
	if err != nil {
		return nil, fmt.Errorf("event grid emulator: %w", err)
	}
	if r.nats, err = bench.StartNATS(o.Dir); err != nil {
		return nil, err
	}
	// As `cmkd run` builds it: only events of the configured vaults count.
	r.dec = cevents.NewDecoder(cevents.DecoderConfig{AllowedVaults: []string{r.env.KV.URL()}})
	if err = r.startWorker(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// makeKeys returns the Env's key and creates the others (RSA-2048, like it).
func makeKeys(ctx context.Context, env *bench.Env, n int) ([]key, error) {
	keys := []key{{name: env.Key.Name, id: env.Key, version: env.Version}}
	for i := 1; i < n; i++ {
		resp, err := env.AZ.CreateKey(ctx, fmt.Sprintf("%s-%02d", bench.KeyName, i), azkeys.CreateKeyParameters{
			Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048),
		}, nil)
		if err != nil {
			return nil, fmt.Errorf("create key %d: %w", i, err)
		}
		id, err := cmkd.ParseKeyID(string(*resp.Key.KID))
		if err != nil {
			return nil, err
		}
		keys = append(keys, key{name: id.Name, id: id.Versionless(), version: id.Version})
	}
	return keys, nil
}

// addTenants puts one tenant (and so one DEK) on every key, so that every
// key is in use and a reconcile has a version to verify.
func addTenants(ctx context.Context, env *bench.Env, keys []key) error {
	for i, k := range keys {
		if _, err := env.Store.AddTenant(ctx, fmt.Sprintf("t-%02d", i), k.id); err != nil {
			return fmt.Errorf("add tenant on %s: %w", k.name, err)
		}
	}
	return nil
}

// startWorker runs the worker as `cmkd run` wires it (cmd/cmkd/run.go),
// except that the sources are not its Runners: each phase runs its source
// itself, handing events to the same Worker.Handle, so that the two sources
// are measured one at a time. The probe interval is far beyond the run, so
// every probe during a phase is one an event asked for.
func (r *rig) startWorker(ctx context.Context) error {
	rec, err := handlers.New(handlers.Config{
		Store: r.env.Store, KEK: r.env.KEK, Broadcast: worker.Broadcaster(r.nats.Conn, r.log),
		Instance: instance, Logger: r.log,
	})
	if err != nil {
		return err
	}
	r.reg = prometheus.NewRegistry()
	r.w, err = worker.New(worker.Config{
		Store: r.env.Store, Reconciler: rec, Limits: r.env.KEK, Instance: instance, ProbeInterval: time.Hour,
		NATS: r.nats.Conn, Registerer: r.reg, Gatherer: r.reg, Logger: r.log,
	})
	if err != nil {
		return err
	}
	wctx, cancel := context.WithCancel(ctx)
	r.stopW, r.exitedW = cancel, make(chan error, 1)
	go func() { r.exitedW <- r.w.Run(wctx) }()
	// Check every key once now, so that the first phase's events do not
	// pay for it: the worker spreads its own first checks over the (hour
	// long) probe interval.
	for _, k := range r.keys {
		if _, err := r.w.Reconcile(ctx, handlers.Request{Key: k.id, Cause: "warm-up"}); err != nil {
			return fmt.Errorf("first check of %s: %w", k.name, err)
		}
	}
	return nil
}

// reconciles is the worker's count of reconciles by outcome so far.
func (r *rig) reconciles() (counts, error) {
	return counter(r.reg, "cmkd_probes_total", "outcome")
}

// handled is the worker's count of events handled by outcome so far.
func (r *rig) handled() (counts, error) {
	return counter(r.reg, "cmkd_events_total", "outcome")
}

func (r *rig) close() {
	if r.stopW != nil {
		r.stopW()
		if err := <-r.exitedW; err != nil && !errors.Is(err, context.Canceled) {
			r.log.Warn("worker", slog.Any("err", err))
		}
	}
	if r.nats != nil {
		r.nats.Close()
	}
	if r.eg != nil {
		r.eg.Close()
	}
	if r.env != nil {
		r.env.Close()
	}
}
