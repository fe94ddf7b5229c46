package kek

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
)

func TestProbeOutcomes(t *testing.T) {
	e := newEnv(t, nil)
	tests := []struct {
		name    string
		shape   func(t *testing.T, id cmkd.KeyID)
		want    Outcome
		wantErr error
	}{
		{"usable", func(*testing.T, cmkd.KeyID) {}, Usable, nil},
		{"disabled", func(t *testing.T, id cmkd.KeyID) {
			e.update(t, id, azkeys.KeyAttributes{Enabled: ptr(false)})
		}, Disabled, ErrDisabled},
		{"expired", func(t *testing.T, id cmkd.KeyID) {
			e.update(t, id, azkeys.KeyAttributes{Expires: ptr(time.Now().Add(-time.Hour))})
		}, Expired, ErrExpired},
		{"not-yet-valid", func(t *testing.T, id cmkd.KeyID) {
			e.update(t, id, azkeys.KeyAttributes{NotBefore: ptr(time.Now().Add(time.Hour))})
		}, NotYetValid, ErrNotYetValid},
		{"deleted", func(t *testing.T, id cmkd.KeyID) {
			if _, err := e.admin.DeleteKey(t.Context(), id.Name, nil); err != nil {
				t.Fatal(err)
			}
		}, Deleted, ErrNotFound},
		{"purged", func(t *testing.T, id cmkd.KeyID) {
			if _, err := e.admin.DeleteKey(t.Context(), id.Name, nil); err != nil {
				t.Fatal(err)
			}
			if _, err := e.admin.PurgeDeletedKey(t.Context(), id.Name, nil); err != nil {
				t.Fatal(err)
			}
		}, Purged, ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := e.create(t, "probe-"+tt.name, azkeys.KeyTypeRSA)
			tt.shape(t, id)
			st, err := e.kek.Probe(t.Context(), e.url(id.Name))
			if err != nil {
				t.Fatalf("probe: %v", err)
			}
			if st.Outcome != tt.want || !errors.Is(st.Err, tt.wantErr) || (tt.wantErr == nil) != (st.Err == nil) {
				t.Fatalf("outcome %s err %v, want %s %v", st.Outcome, st.Err, tt.want, tt.wantErr)
			}
			if st.Key.Name != id.Name || st.ProbedAt.IsZero() {
				t.Fatalf("state %+v", st)
			}
			if tt.want == Usable && (st.Key.Version != id.Version || st.Kty != "RSA" || !st.Enabled) {
				t.Fatalf("usable state %+v, want version %s", st, id.Version)
			}
		})
	}
}

func TestProbeFollowsLatestVersion(t *testing.T) {
	e := newEnv(t, nil)
	v1 := e.create(t, "rot", azkeys.KeyTypeRSA)
	v2 := e.rotate(t, "rot")
	st, _ := e.kek.Probe(t.Context(), e.url("rot"))
	if st.Outcome != Usable || st.Key.Version != v2.Version {
		t.Fatalf("versionless probe = %s %s, want usable %s", st.Outcome, st.Key.Version, v2.Version)
	}
	e.update(t, v1, azkeys.KeyAttributes{Enabled: ptr(false)})
	st, _ = e.kek.Probe(t.Context(), v1)
	if st.Outcome != Disabled || st.Key.Version != v1.Version {
		t.Fatalf("versioned probe of disabled v1 = %s %s", st.Outcome, st.Key.Version)
	}
}

func TestProbeAccessDenied(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(t, "revoked", azkeys.KeyTypeRSA)
	e.srv.Revoke()
	st, err := e.kek.Probe(t.Context(), id)
	if err != nil || st.Outcome != AccessDenied || !errors.Is(st.Err, ErrAccessDenied) {
		t.Fatalf("probe = %s %v %v", st.Outcome, st.Err, err)
	}
	var re *azcore.ResponseError
	if !errors.As(st.Err, &re) || re.StatusCode != 403 {
		t.Fatalf("ResponseError not reachable: %v", st.Err)
	}
	e.srv.Grant()
	if st, _ := e.kek.Probe(t.Context(), id); st.Outcome != Usable {
		t.Fatalf("after grant: %s", st.Outcome)
	}
}

func TestProbeUnreachable(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(t, "faulty", azkeys.KeyTypeRSA)
	e.srv.SetFaults(keyvault.Faults{ErrorRate: 1})
	st, err := e.kek.Probe(t.Context(), id)
	if err != nil || st.Outcome != Unreachable || !errors.Is(st.Err, ErrUnavailable) {
		t.Fatalf("5xx probe = %s %v %v", st.Outcome, st.Err, err)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "https://" + l.Addr().String() + "/keys/k"
	l.Close()
	st, err = e.kek.Probe(t.Context(), cmkd.MustParseKeyID(closed))
	if err != nil || st.Outcome != Unreachable || !errors.Is(st.Err, ErrUnavailable) {
		t.Fatalf("closed port probe = %s %v %v", st.Outcome, st.Err, err)
	}
}

func TestProbeThrottled(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxRetries = -1 })
	id := e.create(t, "busy", azkeys.KeyTypeRSA)
	e.srv.SetThrottle(1, time.Minute, false)
	if st, _ := e.kek.Probe(t.Context(), id); st.Outcome != Usable {
		t.Fatalf("first probe within budget: %s %v", st.Outcome, st.Err)
	}
	st, err := e.kek.Probe(t.Context(), id)
	if err != nil || st.Outcome != Throttled || !errors.Is(st.Err, ErrThrottled) {
		t.Fatalf("probe = %s %v %v", st.Outcome, st.Err, err)
	}
	if e.kek.Rate(e.srv.URL()) >= DefaultInitialRate {
		t.Fatalf("rate %v not reduced after 429", e.kek.Rate(e.srv.URL()))
	}
}

func TestProbeInvalidKeyAndContext(t *testing.T) {
	e := newEnv(t, nil)
	if _, err := e.kek.Probe(t.Context(), cmkd.KeyID{}); !errors.Is(err, cmkd.ErrInvalidKeyID) {
		t.Fatalf("err = %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := e.kek.Probe(ctx, e.url("k")); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled probe err = %v", err)
	}
}

// TestRateOfInvalidVaultLeavesClientUsable: asking the rate of a string
// that is no vault answers 0 and does not wedge the client.
func TestRateOfInvalidVaultLeavesClientUsable(t *testing.T) {
	e := newEnv(t, nil)
	id := e.create(t, "k", azkeys.KeyTypeRSA)
	if r := e.kek.Rate("http://not a vault"); r != 0 {
		t.Fatalf("rate of an invalid vault = %v", r)
	}
	done := make(chan Outcome, 1)
	go func() {
		st, _ := e.kek.Probe(t.Context(), id)
		done <- st.Outcome
	}()
	select {
	case o := <-done:
		if o != Usable {
			t.Fatalf("probe after Rate = %s", o)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("probe blocked after Rate of an invalid vault")
	}
}
