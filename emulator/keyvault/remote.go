package keyvault

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
)

// Remote drives an emulator running in another process through its
// control API (/_emulator/), as `cmkd vault revoke` and the end-to-end
// tests do.
type Remote struct {
	// URL is the emulated vault's URL.
	URL string
	// Token is the emulator's bearer token.
	Token string
	// HTTP is the client to use; it must trust the emulator's CA.
	HTTP *http.Client
}

// SetAccess revokes (true) or grants again (false) every caller's access
// to the vault's keys: what an operator removing cmkd's role assignment in
// Azure does.
func (r Remote) SetAccess(ctx context.Context, revoked bool) error {
	return r.post(ctx, "/_emulator/access", accessReq{Revoked: &revoked})
}

func (r Remote) post(ctx context.Context, path string, body any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.URL+path, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("emulator answered %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// SetFaults makes every later request of the vault slow, failing or
// dropped as f says (zero Faults: none).
func (r Remote) SetFaults(ctx context.Context, f Faults) error {
	return r.post(ctx, "/_emulator/faults", faultsReq{
		LatencyMS: f.Latency.Milliseconds(), JitterMS: f.Jitter.Milliseconds(), ErrorRate: f.ErrorRate, DropRate: f.DropRate, Methods: f.Methods,
	})
}

// Calls returns the requests the vault answered, by operation, since it
// started or the last ResetCalls.
func (r Remote) Calls(ctx context.Context) (map[string]int64, error) {
	var calls map[string]int64
	return calls, r.get(ctx, "/_emulator/calls", &calls)
}

// KeyCalls returns the requests the vault answered that name a key, by key
// name and operation (Server.KeyCalls).
func (r Remote) KeyCalls(ctx context.Context) (map[string]map[string]int64, error) {
	var calls map[string]map[string]int64
	return calls, r.get(ctx, "/_emulator/calls/keys", &calls)
}

// get reads a control endpoint's JSON answer into out.
func (r Remote) get(ctx context.Context, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("emulator answered %s", resp.Status)
	}
	return json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
}

// ResetCalls zeroes the vault's call counts.
func (r Remote) ResetCalls(ctx context.Context) error {
	return r.post(ctx, "/_emulator/calls/reset", struct{}{})
}

// SetSoftDelete turns the vault's purge protection on or off and sets its
// soft-delete retention in days (0: the default), as Server.SetSoftDelete.
func (r Remote) SetSoftDelete(ctx context.Context, purgeProtection bool, retentionDays int) error {
	return r.post(ctx, "/_emulator/softdelete", softDeleteReq{PurgeProtection: &purgeProtection, RetentionDays: retentionDays})
}
