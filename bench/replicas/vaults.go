package replicas

import (
	"context"
	"crypto/x509"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"golang.org/x/sync/errgroup"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/bench"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
	"github.com/cmkd-io/cmkd/kek"
	"github.com/cmkd-io/cmkd/store"
)

// vault is one Key Vault emulator with one RSA-2048 key, and the azkeys
// client a customer would rotate the key with.
type vault struct {
	kv  *keyvault.Server
	az  *azkeys.Client
	key cmkd.KeyID // versionless
}

// startVaults starts n emulators, each with one key, throttling off until
// the scenario sets it.
func startVaults(ctx context.Context, n int, log *slog.Logger) (vs []*vault, err error) {
	defer func() {
		if err != nil {
			closeVaults(vs)
		}
	}()
	for i := range n {
		bv, err := bench.StartVault(ctx, fmt.Sprintf("replicas%d", i), log)
		if err != nil {
			return vs, err
		}
		vs = append(vs, &vault{kv: bv.KV, az: bv.AZ, key: bv.Key})
	}
	return vs, nil
}

func closeVaults(vs []*vault) {
	for _, v := range vs {
		v.kv.Close()
	}
}

// cas is the emulators' CA certificates, for the replicas' kek clients.
func cas(vs []*vault) []string {
	var out []string
	for _, v := range vs {
		out = append(out, string(v.kv.CAPEM()))
	}
	return out
}

func roots(vs []*vault) *x509.CertPool {
	p := x509.NewCertPool()
	for _, v := range vs {
		p.AppendCertsFromPEM(v.kv.CAPEM())
	}
	return p
}

// rotate makes a new current version of every key. Throttling is lifted
// for the customer's call (it is not what is measured) and set again at
// once, with the scenarios' latency, before the next vault's: a replica
// that sees a rotation starts its rewrap under the limit. Setting the limit
// restarts the vault's window and its call counts. It returns the new
// versions.
func rotate(ctx context.Context, vs []*vault, limit int, window time.Duration) ([]string, error) {
	versions := make([]string, len(vs))
	for i, v := range vs {
		v.kv.SetThrottle(-1, 0, true)
		resp, err := v.az.RotateKey(ctx, v.key.Name, nil)
		v.kv.SetThrottle(limit, window, true)
		v.kv.SetFaults(keyvault.Faults{Latency: time.Millisecond, Jitter: 2 * time.Millisecond})
		v.kv.ResetCalls()
		if err != nil {
			return nil, fmt.Errorf("rotate %s: %w", v.key, err)
		}
		versions[i] = strings.ToLower(resp.Key.KID.Version())
	}
	return versions, nil
}

// throttled is the number of 429s the vault answered since the last
// rotate.
func (v *vault) throttled() int64 { return v.kv.Calls()["throttled"] }

// seed adds tenants <prefix>-000… on key, perTenant DEKs each, wrapped
// locally under the key's current version and written straight through
// the backend — setup, not what is measured — on a few goroutines.
func seed(ctx context.Context, st *store.Store, kc *kek.Client, key cmkd.KeyID, prefix string, tenants, perTenant int) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := range tenants {
		g.Go(func() error {
			id := fmt.Sprintf("%s-%03d", prefix, i)
			t := store.Tenant{ID: id, Key: key, State: store.StateActive, CreatedAt: time.Now().UTC()}
			for j := range perTenant {
				d, err := bench.NewDEK(gctx, kc, id, key)
				if err != nil {
					return err
				}
				if j == 0 {
					t.KeyVersion = d.Version()
					if err := st.Backend().AddTenant(gctx, t); err != nil {
						return fmt.Errorf("add tenant %s: %w", id, err)
					}
				}
				if err := st.Backend().InsertDEK(gctx, store.OneLayer(d)); err != nil {
					return fmt.Errorf("insert dek of %s: %w", id, err)
				}
			}
			return nil
		})
	}
	return g.Wait()
}
