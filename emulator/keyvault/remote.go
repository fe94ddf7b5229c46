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
