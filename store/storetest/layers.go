package storetest

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/store"
)

var layerCases = []testCase{
	{"LayersBothKeysNeeded", testLayersBothKeysNeeded},
	{"LayersShareMovedFails", testLayersShareMovedFails},
	{"LayersPlatformOnly", testLayersPlatformOnly},
	{"LayersRotateOneLayer", testLayersRotateOneLayer},
	{"KeyChangeOnChangeOff", testKeyChangeOnChangeOff},
	{"KeyChangeOneAtATime", testKeyChangeOneAtATime},
	{"KeyChangeResumes", testKeyChangeResumes},
	{"KeyChangeStopsOnUnusableKey", testKeyChangeStopsOnUnusableKey},
	{"KeyChangeTwoProcesses", testKeyChangeTwoProcesses},
}

// platformStore is a store whose tenants are under a platform key, made
// for the case, as well as their own.
func (f *fixture) platformStore() (*store.Store, cmkd.KeyID) {
	f.t.Helper()
	p := f.createKey("platform")
	return f.store(func(c *store.Config) { c.PlatformKey = p }), p
}

// layersOf returns the layers of the tenant's active DEK by layer name.
func layersOf(t *testing.T, s *store.Store, tenant string) map[string]store.DEK {
	t.Helper()
	ds, err := s.Backend().ActiveDEK(t.Context(), tenant)
	if err != nil {
		t.Fatalf("active dek: %v", err)
	}
	out := map[string]store.DEK{}
	for _, d := range ds {
		out[d.Layer] = d
	}
	return out
}

// With two layers each DEK is two shares, each under its own key: a store
// that cannot unwrap either one reads nothing, and neither share alone is
// the DEK.
func testLayersBothKeysNeeded(t *testing.T, f *fixture) {
	s, platform := f.platformStore()
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 5)
	l := layersOf(t, s, "a")
	c, p := l[store.LayerCustomer], l[store.LayerPlatform]
	if len(l) != 2 || c.Key != f.Key || p.Key != platform {
		t.Fatalf("layers %+v, want customer under %s and platform under %s", l, f.Key, platform)
	}
	if bytes.Equal(c.KCV, c.FullKCV) || bytes.Equal(p.KCV, p.FullKCV) || !bytes.Equal(c.FullKCV, p.FullKCV) {
		t.Fatal("a share's check value is the DEK's: a share is the DEK itself")
	}
	readsBack(t, f.store(nil), "a", want)

	for _, k := range []struct {
		name    string
		version string
		key     cmkd.KeyID
	}{{"customer", f.Version, f.Key}, {"platform", p.Current.KID.Version, platform}} {
		f.setEnabled(k.key, k.version, false)
		cold := f.store(nil)
		for key := range want {
			if _, err := cold.Get(t.Context(), "a", key); err == nil {
				t.Fatalf("%s key disabled: %s read anyway", k.name, key)
			}
		}
		f.setEnabled(k.key, k.version, true)
	}
	readsBack(t, f.store(nil), "a", want)
}

// setEnabled enables or disables one version of any key of the vault.
func (f *fixture) setEnabled(key cmkd.KeyID, version string, on bool) {
	f.t.Helper()
	if key == f.Key {
		f.SetEnabled(version, on)
		return
	}
	f.setKeyEnabled(key.Name, version, on)
	f.KEK.Invalidate(key)
}

// A share moved into another tenant's DEK — both tenants under the same two
// keys, so Key Vault unwraps it — makes a key that fails the DEK's check
// value: the records stay unreadable and the error says why.
func testLayersShareMovedFails(t *testing.T, f *fixture) {
	s, _ := f.platformStore()
	f.addTenant(s, "a")
	f.addTenant(s, "b")
	put(t, s, "b", "k", []byte("b's secret"))
	la, lb := layersOf(t, s, "a"), layersOf(t, s, "b")
	moved := lb[store.LayerCustomer]
	moved.Current, moved.KCV = la[store.LayerCustomer].Current, la[store.LayerCustomer].KCV
	err := s.Backend().ReplaceLayers(t.Context(), moved.ID,
		[]cmkd.KeyID{lb[store.LayerCustomer].Current.KID, lb[store.LayerPlatform].Current.KID},
		[]store.DEK{moved, lb[store.LayerPlatform]})
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.store(nil).Get(t.Context(), "b", "k")
	wantErr(t, err, store.ErrIntegrity)
}

// A tenant with no key of its own has the platform layer alone.
func testLayersPlatformOnly(t *testing.T, f *fixture) {
	s, platform := f.platformStore()
	if _, err := s.AddTenant(t.Context(), "p", cmkd.KeyID{}); err != nil {
		t.Fatal(err)
	}
	want := putMany(t, s, "p", 3)
	l := layersOf(t, s, "p")
	if len(l) != 1 || l[store.LayerPlatform].Key != platform || !bytes.Equal(l[store.LayerPlatform].KCV, l[store.LayerPlatform].FullKCV) {
		t.Fatalf("layers %+v, want the platform layer alone", l)
	}
	readsBack(t, f.store(nil), "p", want)
	ts, err := s.TenantsByKey(t.Context(), platform)
	if err != nil || len(ts) != 1 || ts[0].ID != "p" || ts[0].LayerOf(platform) != store.LayerPlatform {
		t.Fatalf("tenants of the platform key: %+v, %v", ts, err)
	}
	// Without a platform key a tenant needs a key of its own.
	_, err = f.store(nil).AddTenant(t.Context(), "q", cmkd.KeyID{})
	wantErr(t, err, store.ErrNoKey)
}

// Rotating one layer's key moves only that layer: the other's wrappings
// are not listed, not unwrapped, not changed.
func testLayersRotateOneLayer(t *testing.T, f *fixture) {
	s, platform := f.platformStore()
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 3)
	before := layersOf(t, s, "a")
	v2 := f.rotateKey(platform)
	todo, err := s.ListDEKsNotAt(t.Context(), platform, v2, "", 100)
	if err != nil || len(todo) != 1 || todo[0].Layer != store.LayerPlatform {
		t.Fatalf("layers to move under %s: %+v, %v", platform, todo, err)
	}
	if none, err := s.ListDEKsNotAt(t.Context(), f.Key, f.Version, "", 100); err != nil || len(none) != 0 {
		t.Fatalf("customer layers listed for a platform rotation: %+v, %v", none, err)
	}
	f.ResetCalls()
	if _, err := s.RewrapDEK(t.Context(), todo[0], platform.At(v2), true); err != nil {
		t.Fatal(err)
	}
	after := layersOf(t, s, "a")
	if after[store.LayerCustomer].Current.KID != before[store.LayerCustomer].Current.KID ||
		!bytes.Equal(after[store.LayerCustomer].Current.Value, before[store.LayerCustomer].Current.Value) {
		t.Fatal("a platform rotation changed the customer layer")
	}
	if after[store.LayerPlatform].Current.KID != platform.At(v2) {
		t.Fatalf("platform layer under %s, want %s", after[store.LayerPlatform].Current.KID, platform.At(v2))
	}
	if err := s.CompleteRewrap(t.Context(), platform, v2); err != nil {
		t.Fatal(err)
	}
	if tn, _ := s.Tenant(t.Context(), "a"); tn.PlatformKeyVersion != v2 || tn.KeyVersion == v2 {
		t.Fatalf("versions after the platform rewrap: customer %q platform %q", tn.KeyVersion, tn.PlatformKeyVersion)
	}
	readsBack(t, f.store(nil), "a", want)
}

// A platform-only tenant switched to a customer key, then to another key,
// then back, keeps every record readable from every store throughout, and
// reports each change's start and end.
func testKeyChangeOnChangeOff(t *testing.T, f *fixture) {
	s, platform := f.platformStore()
	if _, err := s.AddTenant(t.Context(), "a", cmkd.KeyID{}); err != nil {
		t.Fatal(err)
	}
	want := putMany(t, s, "a", 40)
	claimAll(t, s)
	other := f.createKey("other")
	for _, step := range []struct {
		to     cmkd.KeyID
		layers []string
	}{
		{f.Key, []string{store.LayerCustomer, store.LayerPlatform}},
		{other, []string{store.LayerCustomer, store.LayerPlatform}},
		{cmkd.KeyID{}, []string{store.LayerPlatform}},
	} {
		tn, err := s.SetKey(t.Context(), "a", step.to, cmkd.StatusEvent{})
		if err != nil || tn.Key != step.to || tn.Change == nil {
			t.Fatalf("set key %s: %+v, %v", step.to, tn, err)
		}
		put(t, s, "a", "during-"+step.to.Name, []byte("written while changing"))
		want["during-"+step.to.Name] = []byte("written while changing")
		readsBack(t, f.store(nil), "a", want)
		st, err := s.MoveDEKs(t.Context(), "a", nil)
		if err != nil || st.Moved == 0 {
			t.Fatalf("move deks to %s: %+v, %v", step.to, st, err)
		}
		for _, ds := range groupByDEK(deks(t, s, "a")) {
			var got []string
			for _, d := range ds {
				got = append(got, d.Layer)
				if d.Layer == store.LayerCustomer && d.Key != step.to || d.Layer == store.LayerPlatform && d.Key != platform {
					t.Fatalf("dek %s layer %s under %s after the change to %s", d.ID, d.Layer, d.Key, step.to)
				}
			}
			if !slices.Equal(got, step.layers) {
				t.Fatalf("dek %s has layers %v after the change to %s, want %v", ds[0].ID, got, step.to, step.layers)
			}
		}
		readsBack(t, f.store(nil), "a", want)
		if tn, _ := s.Tenant(t.Context(), "a"); tn.Change != nil {
			t.Fatalf("change still under way after MoveDEKs: %+v", tn.Change)
		}
		got := kinds(claimAll(t, s))
		wantKinds := []cmkd.Kind{cmkd.KindKeyChangeStarted, cmkd.KindKeyChangeCompleted}
		if step.to != f.Key {
			wantKinds = append(wantKinds, cmkd.KindVersionRetired) // a customer key was left
		}
		if !slices.Equal(got, wantKinds) {
			t.Fatalf("events of the change to %s: %v, want %v", step.to, got, wantKinds)
		}
		// A second run finds nothing to do and reports nothing.
		if st, err := s.MoveDEKs(t.Context(), "a", nil); err != nil || st.Moved != 0 {
			t.Fatalf("second move: %+v, %v", st, err)
		}
		if es := claimAll(t, s); len(es) != 0 {
			t.Fatalf("a finished change reported again: %v", kinds(es))
		}
	}
}

func groupByDEK(layers []store.DEK) [][]store.DEK {
	var out [][]store.DEK
	for i, d := range layers {
		if i == 0 || layers[i-1].ID != d.ID {
			out = append(out, nil)
		}
		out[len(out)-1] = append(out[len(out)-1], d)
	}
	return out
}

// A change must end before the next begins; setting the key the tenant has
// is no change.
func testKeyChangeOneAtATime(t *testing.T, f *fixture) {
	s, platform := f.platformStore()
	f.addTenant(s, "a")
	other := f.createKey("other")
	if _, err := s.SetKey(t.Context(), "a", f.Key, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	if tn, _ := s.Tenant(t.Context(), "a"); tn.Change != nil {
		t.Fatal("setting the same key began a change")
	}
	if _, err := s.SetKey(t.Context(), "a", other, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	_, err := s.SetKey(t.Context(), "a", cmkd.KeyID{}, cmkd.StatusEvent{})
	wantErr(t, err, store.ErrChangeInProgress)
	_, err = s.SetKey(t.Context(), "a", platform, cmkd.StatusEvent{})
	wantErr(t, err, cmkd.ErrInvalidKeyID)
	// While the change runs the old key's tenants still include this one.
	for _, k := range []cmkd.KeyID{f.Key, other, platform} {
		ts, err := s.TenantsByKey(t.Context(), k)
		if err != nil || len(ts) != 1 {
			t.Fatalf("tenants of %s during the change: %+v, %v", k, ts, err)
		}
	}
	if _, err := s.MoveDEKs(t.Context(), "a", nil); err != nil {
		t.Fatal(err)
	}
	if ts, err := s.TenantsByKey(t.Context(), f.Key); err != nil || len(ts) != 0 {
		t.Fatalf("tenants of the old key after the change: %+v, %v", ts, err)
	}
}

// A change stopped half-way (here: after the first page, by cancelling)
// resumes from what the store holds, in another process.
func testKeyChangeResumes(t *testing.T, f *fixture) {
	s, _ := f.platformStore()
	f.addTenant(s, "a")
	s2 := f.store(func(c *store.Config) { c.DEKMaxEncryptions = 1; c.PlatformKey = s.PlatformKey() })
	want := putMany(t, s2, "a", 260) // 260 DEKs: more than a page
	other := f.createKey("other")
	if _, err := s.SetKey(t.Context(), "a", other, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := contextWithCancel(t)
	_, err := s.MoveDEKs(ctx, "a", func(store.ChangeStats) { cancel() })
	if err == nil {
		t.Fatal("a cancelled change completed")
	}
	if tn, _ := s.Tenant(t.Context(), "a"); tn.Change == nil {
		t.Fatal("a cancelled change was recorded complete")
	}
	readsBack(t, f.store(nil), "a", want)
	st, err := f.store(func(c *store.Config) { c.PlatformKey = s.PlatformKey() }).MoveDEKs(t.Context(), "a", nil)
	if err != nil || st.Moved == 0 || st.Moved >= st.Seen {
		t.Fatalf("resumed change: %+v, %v (want some, not all, moved)", st, err)
	}
	readsBack(t, f.store(nil), "a", want)
}

// A new key that cannot be used stops the change with an error naming it;
// the DEKs not moved stay readable under the old key, and the change stays
// recorded, to complete once the key works.
func testKeyChangeStopsOnUnusableKey(t *testing.T, f *fixture) {
	s, _ := f.platformStore()
	f.addTenant(s, "a")
	want := putMany(t, s, "a", 3)
	other := f.createKey("other")
	if _, err := s.SetKey(t.Context(), "a", other, cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	v := f.rotateKey(other) // the latest version, which new wrappings go under
	f.setKeyEnabled(other.Name, v, false)
	f.KEK.Invalidate(other)
	_, err := s.MoveDEKs(t.Context(), "a", nil)
	if err == nil || !strings.Contains(err.Error(), other.Name) {
		t.Fatalf("change to a disabled key: %v, want an error naming %s", err, other)
	}
	if tn, _ := s.Tenant(t.Context(), "a"); tn.Change == nil {
		t.Fatal("a stopped change was recorded complete")
	}
	readsBack(t, f.store(nil), "a", want)
	f.setKeyEnabled(other.Name, v, true)
	f.KEK.Invalidate(other)
	if _, err := s.MoveDEKs(t.Context(), "a", nil); err != nil {
		t.Fatal(err)
	}
	readsBack(t, f.store(nil), "a", want)
}

// Two processes carrying out one change at once (a set-key and the
// worker, or two replicas): the lease lets one move the DEKs, the other is
// told it is held, and the change is reported complete once.
func testKeyChangeTwoProcesses(t *testing.T, f *fixture) {
	s, _ := f.platformStore()
	f.addTenant(s, "a")
	s2 := f.store(func(c *store.Config) { c.DEKMaxEncryptions = 1 })
	want := putMany(t, s2, "a", 40)
	claimAll(t, s)
	if _, err := s.SetKey(t.Context(), "a", f.createKey("other"), cmkd.StatusEvent{}); err != nil {
		t.Fatal(err)
	}
	errs := make(chan error, 2)
	for i, st := range []*store.Store{s, f.store(nil)} {
		go func() {
			_, err := st.CarryOutKeyChange(t.Context(), "a", fmt.Sprintf("process-%d", i), time.Minute, nil)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil && !errorsIs(err, store.ErrLeaseHeld) {
			t.Fatal(err)
		}
	}
	if tn, _ := s.Tenant(t.Context(), "a"); tn.Change != nil {
		// The one told the lease was held may have run first and found
		// nothing; the holder finished: nothing may be left.
		t.Fatalf("change still under way: %+v", tn.Change)
	}
	got := kinds(claimAll(t, s))
	if n := slices.Index(got, cmkd.KindKeyChangeCompleted); n < 0 || slices.Index(got[n+1:], cmkd.KindKeyChangeCompleted) >= 0 {
		t.Fatalf("events %v, want key.change.completed once", got)
	}
	readsBack(t, f.store(nil), "a", want)
}
