package keyvault

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

func TestDeleteRecoverPurge(t *testing.T) {
	now := time.Unix(1716930501, 0)
	srv := start(t, Config{Now: func() time.Time { return now }})
	c := newClient(t, srv)
	kb := createKey(t, c, "doomed", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)})
	ver := kb.Key.KID.Version()

	del, err := c.DeleteKey(t.Context(), "doomed", nil)
	if err != nil {
		t.Fatalf("delete: %v", err)
	}
	if *del.RecoveryID != srv.URL()+"/deletedkeys/doomed" || del.DeletedDate.Unix() != 1716930501 ||
		del.ScheduledPurgeDate.Unix() != 1716930501+7*86400 || *del.Key.KID != *kb.Key.KID {
		t.Fatalf("deleted bundle %+v", del)
	}
	_, err = c.GetKey(t.Context(), "doomed", "", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
	_, err = c.WrapKey(t.Context(), "doomed", ver, azkeys.KeyOperationParameters{Algorithm: ptr(azkeys.EncryptionAlgorithmRSAOAEP), Value: make([]byte, 32)}, nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
	_, err = c.CreateKey(t.Context(), "doomed", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)}, nil)
	wantErr(t, err, http.StatusConflict, "Conflict", "ObjectIsDeletedButRecoverable")

	got, err := c.GetDeletedKey(t.Context(), "doomed", nil)
	if err != nil || *got.RecoveryID != *del.RecoveryID {
		t.Fatalf("get deleted: %v", err)
	}
	pager := c.NewListDeletedKeyPropertiesPager(nil)
	page, err := pager.NextPage(t.Context())
	if err != nil || len(page.Value) != 1 || string(*page.Value[0].KID) != srv.URL()+"/keys/doomed" || page.Value[0].DeletedDate == nil {
		t.Fatalf("list deleted: %v %+v", err, page.Value)
	}

	rec, err := c.RecoverDeletedKey(t.Context(), "doomed", nil)
	if err != nil || *rec.Key.KID != *kb.Key.KID {
		t.Fatalf("recover: %v", err)
	}
	if _, err := c.GetKey(t.Context(), "doomed", ver, nil); err != nil {
		t.Fatalf("recovered version must be readable at once: %v", err)
	}
	_, err = c.GetDeletedKey(t.Context(), "doomed", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
	_, err = c.PurgeDeletedKey(t.Context(), "doomed", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
	_, err = c.RecoverDeletedKey(t.Context(), "never", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")

	if _, err := c.DeleteKey(t.Context(), "doomed", nil); err != nil {
		t.Fatalf("delete again: %v", err)
	}
	purge, err := c.PurgeDeletedKey(t.Context(), "doomed", nil)
	if err != nil {
		t.Fatalf("purge: %v", err)
	}
	_ = purge
	_, err = c.GetDeletedKey(t.Context(), "doomed", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
	// After purge the name is free again.
	createKey(t, c, "doomed", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)})
	_, err = c.DeleteKey(t.Context(), "never", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
}

func TestPurgeAnswers204(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	createKey(t, c, "p", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeEC)})
	if _, err := c.DeleteKey(t.Context(), "p", nil); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodDelete, srv.URL()+"/deletedkeys/p?api-version=7.5", nil)
	req.Header.Set("Authorization", "Bearer x")
	resp, err := httpClient(srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Content-Type") != "" {
		t.Fatalf("purge: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestListPaging(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	const n = 30 // more than one default page of 25
	for i := range n {
		createKey(t, c, fmt.Sprintf("k%02d", i), azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM)})
	}
	var names []string
	pages := 0
	for pager := c.NewListKeyPropertiesPager(nil); pager.More(); {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		for _, k := range page.Value {
			names = append(names, k.KID.Name())
			if k.KID.Version() != "" || k.Attributes == nil || !*k.Attributes.Enabled {
				t.Fatalf("list item %+v", k)
			}
		}
	}
	if pages != 2 || len(names) != n || names[0] != "k00" || names[n-1] != "k29" {
		t.Fatalf("pages=%d names=%v", pages, names)
	}

	for range 3 {
		if _, err := c.RotateKey(t.Context(), "k00", nil); err != nil {
			t.Fatal(err)
		}
	}
	versions := map[string]bool{}
	for pager := c.NewListKeyPropertiesVersionsPager("k00", nil); pager.More(); {
		page, err := pager.NextPage(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range page.Value {
			versions[k.KID.Version()] = true
		}
	}
	if len(versions) != 4 {
		t.Fatalf("want 4 versions, got %v", versions)
	}
	_, err := c.NewListKeyPropertiesVersionsPager("missing", nil).NextPage(t.Context())
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
}

// azkeys never sends maxresults, but other clients do; the nextLink must
// keep it and stay absolute.
func TestListMaxResults(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	for i := range 5 {
		createKey(t, c, fmt.Sprintf("m%d", i), azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeOctHSM)})
	}
	var seen int
	next := srv.URL() + "/keys?api-version=2025-07-01&maxresults=2"
	for pages := 0; next != ""; pages++ {
		var page struct {
			Value    []map[string]any `json:"value"`
			NextLink *string          `json:"nextLink"`
		}
		status := rawJSON(t, srv, http.MethodGet, next, "", &page)
		if status != 200 || len(page.Value) > 2 || pages > 3 {
			t.Fatalf("status %d page %+v", status, page)
		}
		seen += len(page.Value)
		next = ""
		if page.NextLink != nil {
			next = *page.NextLink
		}
	}
	if seen != 5 {
		t.Fatalf("saw %d keys", seen)
	}
	var e map[string]map[string]any
	if status := rawJSON(t, srv, http.MethodGet, srv.URL()+"/keys?api-version=7.5&maxresults=26", "", &e); status != 400 || e["error"]["code"] != "BadParameter" {
		t.Fatalf("maxresults=26: %d %v", status, e)
	}
}

func TestRotateWithPolicy(t *testing.T) {
	now := time.Unix(1716930624, 0)
	srv := start(t, Config{Now: func() time.Time { return now }})
	c := newClient(t, srv)
	first := createKey(t, c, "rot", azkeys.CreateKeyParameters{Kty: ptr(azkeys.KeyTypeECHSM), Tags: map[string]*string{"t": ptr("1")}})

	def, err := c.GetKeyRotationPolicy(t.Context(), "rot", nil)
	if err != nil || len(def.LifetimeActions) != 1 || *def.LifetimeActions[0].Action.Type != azkeys.KeyRotationPolicyActionNotify ||
		*def.LifetimeActions[0].Trigger.TimeBeforeExpiry != "P30D" {
		t.Fatalf("default policy: %v %+v", err, def)
	}
	put, err := c.UpdateKeyRotationPolicy(t.Context(), "rot", azkeys.KeyRotationPolicy{
		Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: ptr("P90D")},
		LifetimeActions: []*azkeys.LifetimeAction{{
			Action:  &azkeys.LifetimeActionType{Type: ptr(azkeys.KeyRotationPolicyActionRotate)},
			Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: ptr("P30D")},
		}},
	}, nil)
	if err != nil {
		t.Fatalf("put policy: %v", err)
	}
	if len(put.LifetimeActions) != 2 || *put.LifetimeActions[1].Action.Type != azkeys.KeyRotationPolicyActionNotify ||
		*put.ID != srv.URL()+"/keys/rot/rotationpolicy" || put.Attributes.Created.Unix() != now.Unix() {
		t.Fatalf("put policy result %+v", put)
	}
	got, err := c.GetKeyRotationPolicy(t.Context(), "rot", nil)
	if err != nil || *got.Attributes.ExpiryTime != "P90D" || len(got.LifetimeActions) != 2 {
		t.Fatalf("get policy: %v %+v", err, got)
	}

	rot, err := c.RotateKey(t.Context(), "rot", nil)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	if rot.Key.KID.Version() == first.Key.KID.Version() || *rot.Key.Kty != azkeys.KeyTypeECHSM ||
		string(rot.Key.X) == string(first.Key.X) || opsString(rot.Key.KeyOps) != "sign verify" {
		t.Fatalf("rotate must make new material of the same type: %+v", rot.Key)
	}
	if rot.Attributes.Expires.Unix() != 1724706624 || *rot.Tags["t"] != "1" {
		t.Fatalf("rotated exp %v tags %v", rot.Attributes.Expires, rot.Tags)
	}
	latest, _ := c.GetKey(t.Context(), "rot", "", nil)
	if *latest.Key.KID != *rot.Key.KID {
		t.Fatal("rotate did not become the latest version")
	}
	_, err = c.UpdateKeyRotationPolicy(t.Context(), "rot", azkeys.KeyRotationPolicy{
		Attributes: &azkeys.KeyRotationPolicyAttributes{ExpiryTime: ptr("90 days")}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter", "")
	_, err = c.GetKeyRotationPolicy(t.Context(), "nope", nil)
	wantErr(t, err, http.StatusNotFound, "KeyNotFound", "")
}
