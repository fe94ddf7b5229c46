package chaos

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
	"github.com/cmkd-io/cmkd/store/postgres"
	"github.com/cmkd-io/cmkd/store/sqlite"
)

// tenant is a tenant of the run and its key.
type tenant struct {
	ID    string
	Key   string // versionless key URL
	Vault int
	Name  string // the key's name in its vault
}

// openStore opens the run's store as the application would, from the
// harness's process, with a Key Vault client of its own and a cold DEK
// cache; dekMax retires a tenant's DEK after that many writes.
func (c *cluster) openStore(ctx context.Context, dekMax int64) (*store.Store, error) {
	pem, err := os.ReadFile(c.kvCA)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	k, err := kek.New(kek.Config{Credential: kek.StaticToken(kvToken), RootCAs: pool,
		DisableChallengeResourceVerification: true, Policy: kek.VaultPolicy{Vaults: c.vaultURLs(), AllowLoopback: true},
		Limiter: kek.LimiterConfig{InitialRate: 1000}})
	if err != nil {
		return nil, err
	}
	var b store.Backend
	if c.pg != nil {
		b, err = postgres.Open(ctx, postgres.Config{DSN: c.pg.URL, Schema: "cmkd", NoMigrate: true, MaxConns: 8})
	} else {
		b, err = sqlite.Open(ctx, sqlite.Config{Path: c.sqlitePath})
	}
	if err != nil {
		return nil, err
	}
	return store.New(store.Config{Backend: b, KEK: k, DEKMaxEncryptions: dekMax})
}

// recordID names a record: tenant and record key.
type recordID struct{ Tenant, Key string }

func (r recordID) String() string { return r.Tenant + "/" + r.Key }

// ledger is what the workload was told: the value of every acknowledged
// write, and the values of writes that failed (they may or may not have
// landed; a read may return them until the next acknowledged write).
type ledger struct {
	mu    sync.Mutex
	acked map[recordID][]byte
	maybe map[recordID][][]byte
}

func newLedger() *ledger {
	return &ledger{acked: map[recordID][]byte{}, maybe: map[recordID][][]byte{}}
}

func (l *ledger) put(id recordID, v []byte, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.acked[id] = v
		delete(l.maybe, id)
		return
	}
	l.maybe[id] = append(l.maybe[id], v)
}

// allowed reports whether v may be read for id.
func (l *ledger) allowed(id recordID, v []byte) (acked bool, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	a, known := l.acked[id]
	if known && bytes.Equal(a, v) {
		return true, true
	}
	for _, m := range l.maybe[id] {
		if bytes.Equal(m, v) {
			return known, true
		}
	}
	return known, false
}

func (l *ledger) snapshot() map[recordID][]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[recordID][]byte, len(l.acked))
	for k, v := range l.acked {
		out[k] = v
	}
	return out
}

// workload writes and reads records all through the run.
type workload struct {
	st      *store.Store
	tenants []tenant
	ledger  *ledger
	hist    *history

	puts, putErrs, gets, getSealed, getErrs atomic.Int64
	bad                                     atomic.Int64 // reads of a value never written
	badMu                                   sync.Mutex
	badReads                                []string
	seq                                     atomic.Int64
}

// run writes and reads until ctx ends, with n goroutines seeded from seed.
func (w *workload) run(ctx context.Context, n int, seed uint64) {
	var wg sync.WaitGroup
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(g))) // #nosec G404 -- a reproducible workload, not a secret
			for ctx.Err() == nil {
				w.step(ctx, rng)
				time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
}

func (w *workload) step(ctx context.Context, rng *rand.Rand) {
	t := w.tenants[rng.IntN(len(w.tenants))]
	opCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if rng.IntN(2) == 0 {
		// New records mostly; some overwrites of the tenant's first ones.
		key := "w" + strconv.FormatInt(w.seq.Add(1), 10)
		if rng.IntN(5) == 0 {
			key = "w" + strconv.Itoa(1+rng.IntN(20))
		}
		id := recordID{t.ID, key}
		v := make([]byte, 32+rng.IntN(480))
		for i := range v {
			v[i] = byte(rng.Uint32())
		}
		err := w.st.Put(opCtx, t.ID, key, v)
		w.ledger.put(id, v, err)
		w.puts.Add(1)
		if err != nil {
			w.putErrs.Add(1)
			w.hist.add("put "+id.String()+" failed: "+short(err), id.String())
		} else {
			w.hist.add("put "+id.String()+" acknowledged", id.String())
		}
		return
	}
	ids := w.ledger.keys(t.ID, rng)
	if ids == nil {
		return
	}
	got, err := w.st.Get(opCtx, ids.Tenant, ids.Key)
	w.gets.Add(1)
	var sealed *store.SealedError
	switch {
	case errors.As(err, &sealed):
		w.getSealed.Add(1)
	case err != nil:
		w.getErrs.Add(1)
	default:
		if _, ok := w.ledger.allowed(*ids, got); !ok {
			w.bad.Add(1)
			w.hist.add("get "+ids.String()+" returned a value never written", ids.String(), t.ID)
			w.badMu.Lock()
			w.badReads = append(w.badReads, ids.String())
			w.badMu.Unlock()
		}
	}
}

// keys picks one of tenant's acknowledged records, nil if none.
func (l *ledger) keys(tenantID string, rng *rand.Rand) *recordID {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A handful of draws: the map's order is random, the rng keeps it fair.
	var pick *recordID
	n := 0
	for id := range l.acked {
		if id.Tenant != tenantID {
			continue
		}
		n++
		if rng.IntN(n) == 0 {
			c := id
			pick = &c
		}
		if n >= 64 {
			break
		}
	}
	return pick
}

func short(err error) string {
	s := err.Error()
	if len(s) > 160 {
		s = s[:160] + "…"
	}
	return s
}

// seed creates the keys and tenants, and perTenant records for each, each
// under a DEK of its own (so that a rewrap has DEKs to move).
func (c *cluster) seed(ctx context.Context, perTenant int, l *ledger) ([]tenant, error) {
	st, err := c.openStore(ctx, 1)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var tenants []tenant
	for v := range c.vaults {
		kc, err := c.azkeys(v)
		if err != nil {
			return nil, err
		}
		for k := range 2 {
			name := fmt.Sprintf("k%d", 2*v+k)
			if _, err := kc.CreateKey(ctx, name, createRSA(), nil); err != nil {
				return nil, fmt.Errorf("create key %s: %w", name, err)
			}
			url := c.vaults[v].URL() + "/keys/" + name
			key, err := cmkd.ParseKeyID(url)
			if err != nil {
				return nil, err
			}
			for j := range 3 {
				t := tenant{ID: fmt.Sprintf("t%d-%d", 2*v+k, j), Key: key.URL(), Vault: v, Name: name}
				if _, err := st.AddTenant(ctx, t.ID, key); err != nil {
					return nil, fmt.Errorf("add tenant %s: %w", t.ID, err)
				}
				tenants = append(tenants, t)
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(tenants))
	for i, t := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range perTenant {
				id := recordID{t.ID, fmt.Sprintf("s%04d", j)}
				v := []byte(fmt.Sprintf("seed %s %d", id, j))
				if err := st.Put(ctx, t.ID, id.Key, v); err != nil {
					errs[i] = fmt.Errorf("seed %s: %w", id, err)
					return
				}
				l.put(id, v, nil)
			}
		}()
	}
	wg.Wait()
	return tenants, errors.Join(errs...)
}
