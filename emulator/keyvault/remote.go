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
		LatencyMS: f.Latency.Milliseconds(), JitterMS: f.Jitter.Milliseconds(), ErrorRate: f.ErrorRate, DropRate: f.DropRate,
	})
}

// Calls returns the requests the vault answered, by operation, since it
// started or the last ResetCalls.
func (r Remote) Calls(ctx context.Context) (map[string]int64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.URL+"/_emulator/calls", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+r.Token)
	resp, err := r.HTTP.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("emulator answered %s", resp.Status)
	}
	var calls map[string]int64
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&calls); err != nil {
		return nil, err
	}
	return calls, nil
}

// ResetCalls zeroes the vault's call counts.
func (r Remote) ResetCalls(ctx context.Context) error {
	return r.post(ctx, "/_emulator/calls/reset", struct{}{})
}
