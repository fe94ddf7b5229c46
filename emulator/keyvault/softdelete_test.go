package keyvault

import (
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
)

// wantRecovery asserts what azkeys reads of a key's soft-delete setting,
// live and deleted, and the purge date the deletion scheduled.
func wantRecovery(t *testing.T, c *azkeys.Client, name, level string, days int32) {
	t.Helper()
	createKey(t, c, name, azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)})
	got, err := c.GetKey(t.Context(), name, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := got.Attributes; *a.RecoveryLevel != level || *a.RecoverableDays != days {
		t.Fatalf("%s: recoveryLevel %s, recoverableDays %d; want %s, %d", name, *a.RecoveryLevel, *a.RecoverableDays, level, days)
	}
	del, err := c.DeleteKey(t.Context(), name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := del.Attributes; *a.RecoveryLevel != level || *a.RecoverableDays != days {
		t.Fatalf("%s deleted: recoveryLevel %s, recoverableDays %d", name, *a.RecoveryLevel, *a.RecoverableDays)
	}
	if d := del.ScheduledPurgeDate.Sub(*del.DeletedDate); d != time.Duration(days)*24*time.Hour {
		t.Fatalf("%s: purge scheduled %v after deletion, want %d days", name, d, days)
	}
}

func TestRecoveryLevelFollowsSoftDeleteSetting(t *testing.T) {
	for _, tc := range []struct {
		pp    bool
		days  int
		level string
		want  int32
	}{
		{false, 0, "CustomizedRecoverable+Purgeable", 7},
		{false, 30, "CustomizedRecoverable+Purgeable", 30},
		{false, 90, "Recoverable+Purgeable", 90},
		{true, 0, "Recoverable", 90},
		{true, 90, "Recoverable", 90},
		{true, 7, "CustomizedRecoverable", 7},
		{true, 89, "CustomizedRecoverable", 89},
	} {
		srv := start(t, Config{PurgeProtection: tc.pp, RetentionDays: tc.days})
		wantRecovery(t, newClient(t, srv), "k", tc.level, tc.want)
	}
}

func TestRetentionOutOfRangeIsInvalid(t *testing.T) {
	for _, d := range []int{-1, 6, 91} {
		if _, err := Start(Config{RetentionDays: d}); !errors.Is(err, ErrInvalidConfig) {
			t.Fatalf("RetentionDays %d: %v, want ErrInvalidConfig", d, err)
		}
	}
	srv := start(t, Config{})
	if err := srv.SetSoftDelete(true, 100); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("SetSoftDelete(true, 100): %v", err)
	}
	if st := control(t, srv, http.MethodPost, "/_emulator/softdelete", `{"purge_protection":true,"retention_days":3}`); st != http.StatusBadRequest {
		t.Fatalf("control with 3 days: %d", st)
	}
	if st := control(t, srv, http.MethodPost, "/_emulator/softdelete", `{"retention_days":30}`); st != http.StatusBadRequest {
		t.Fatalf("control without purge_protection: %d", st)
	}
	if pp, days := srv.SoftDelete(); pp || days != 7 {
		t.Fatalf("refused changes changed the setting: %v %d", pp, days)
	}
}

// control sends a control API request and returns the status.
func control(t *testing.T, srv *Server, method, path, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := httpClient(srv).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func TestPurgeRefusedUnderPurgeProtection(t *testing.T) {
	clock := &fakeClock{}
	clock.unix.Store(1_800_000_000)
	srv := start(t, Config{PurgeProtection: true, VaultName: "myvault", Now: clock.now})
	c := newClient(t, srv)
	createKey(t, c, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)})
	if _, err := c.DeleteKey(t.Context(), "k", nil); err != nil {
		t.Fatal(err)
	}
	_, err := c.PurgeDeletedKey(t.Context(), "k", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "")
	var body struct{ Error struct{ Message string } }
	if st := rawJSON(t, srv, http.MethodDelete, srv.URL()+"/deletedkeys/k?api-version=7.5", "", &body); st != http.StatusForbidden {
		t.Fatalf("raw purge: %d", st)
	}
	want := "Operation \"purge\" is not allowed because purge protection is enabled for this vault. Key Vault service " +
		"will automatically purge it after the retention period has passed.\nVault: myvault;location=emulator"
	if body.Error.Message != want {
		t.Fatalf("message %q, want %q", body.Error.Message, want)
	}
	// The key is still there to recover, and can be deleted again.
	if _, err := c.GetDeletedKey(t.Context(), "k", nil); err != nil {
		t.Fatalf("deleted key after refused purge: %v", err)
	}
	// Once the retention has passed, purge goes through.
	clock.advance(90 * 24 * time.Hour)
	if _, err := c.PurgeDeletedKey(t.Context(), "k", nil); err != nil {
		t.Fatalf("purge after the retention: %v", err)
	}
}

func TestPurgeAllowedWithoutPurgeProtection(t *testing.T) {
	srv := start(t, Config{RetentionDays: 90})
	c := newClient(t, srv)
	createKey(t, c, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)})
	if _, err := c.DeleteKey(t.Context(), "k", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedKey(t.Context(), "k", nil); err != nil {
		t.Fatalf("purge: %v", err)
	}
}

func TestSoftDeleteChangedAtRunTime(t *testing.T) {
	srv := start(t, Config{})
	c := newClient(t, srv)
	wantRecovery(t, c, "before", "CustomizedRecoverable+Purgeable", 7)

	// Over the control API, as a test in another process would.
	if st := control(t, srv, http.MethodPost, "/_emulator/softdelete", `{"purge_protection":true}`); st != http.StatusNoContent {
		t.Fatalf("control: %d", st)
	}
	var got softDeleteResp
	if st := rawJSON(t, srv, http.MethodGet, srv.URL()+"/_emulator/softdelete", "", &got); st != http.StatusOK {
		t.Fatalf("GET softdelete: %d", st)
	}
	if got != (softDeleteResp{PurgeProtection: true, RetentionDays: 90, RecoveryLevel: "Recoverable"}) {
		t.Fatalf("GET softdelete: %+v", got)
	}
	wantRecovery(t, c, "protected", "Recoverable", 90)
	_, err := c.PurgeDeletedKey(t.Context(), "protected", nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden", "")
	// A key deleted before keeps its purge date but reads the new level.
	d, err := c.GetDeletedKey(t.Context(), "before", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *d.Attributes.RecoveryLevel != "Recoverable" || d.ScheduledPurgeDate.Sub(*d.DeletedDate) != 7*24*time.Hour {
		t.Fatalf("earlier deleted key: %s, purge after %v", *d.Attributes.RecoveryLevel, d.ScheduledPurgeDate.Sub(*d.DeletedDate))
	}

	// From Go.
	if err := srv.SetSoftDelete(true, 30); err != nil {
		t.Fatal(err)
	}
	wantRecovery(t, c, "custom", "CustomizedRecoverable", 30)
	if err := srv.SetSoftDelete(false, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.PurgeDeletedKey(t.Context(), "protected", nil); err != nil {
		t.Fatalf("purge once protection is off: %v", err)
	}
	if pp, days := srv.SoftDelete(); pp || days != 7 {
		t.Fatalf("SoftDelete() = %v, %d", pp, days)
	}
}

func TestSoftDeleteSettingSurvivesRestart(t *testing.T) {
	cfg := Config{StateFile: filepath.Join(t.TempDir(), "vault.json")}
	srv := start(t, cfg)
	if err := srv.SetSoftDelete(true, 60); err != nil {
		t.Fatal(err)
	}
	createKey(t, newClient(t, srv), "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA)})
	srv.Close()

	again := start(t, cfg)
	if pp, days := again.SoftDelete(); !pp || days != 60 {
		t.Fatalf("after restart: purge protection %v, %d days; want true, 60", pp, days)
	}
	got, err := newClient(t, again).GetKey(t.Context(), "k", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if *got.Attributes.RecoveryLevel != "CustomizedRecoverable" || *got.Attributes.RecoverableDays != 60 {
		t.Fatalf("after restart: %s %d", *got.Attributes.RecoveryLevel, *got.Attributes.RecoverableDays)
	}
}
