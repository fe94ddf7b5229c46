package kek

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"

	"github.com/cmkd-io/cmkd/emulator/keyvault"
)

func TestConfigValidateNamesField(t *testing.T) {
	cred := StaticToken("t")
	tests := []struct {
		cfg   Config
		field string
	}{
		{Config{}, "Credential"},
		{Config{Credential: cred, ProbeFreshness: -1}, "ProbeFreshness"},
		{Config{Credential: cred, TryTimeout: -1}, "TryTimeout"},
		{Config{Credential: cred, RetryDelay: time.Minute}, "MaxRetryDelay"},
		{Config{Credential: cred, Limiter: LimiterConfig{HSMLimit: -1}}, "HSMLimit"},
		{Config{Credential: cred, Limiter: LimiterConfig{MinRate: -1}}, "MinRate"},
		{Config{Credential: cred, Limiter: LimiterConfig{MaxRate: 0.5}}, "MaxRate"},
		{Config{Credential: cred, Limiter: LimiterConfig{InitialRate: 20000}}, "InitialRate"},
		{Config{Credential: cred, Limiter: LimiterConfig{MaxConcurrency: -1}}, "MaxConcurrency"},
		{Config{Credential: cred, Limiter: LimiterConfig{MaxPause: time.Millisecond}}, "MaxPause"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.field) {
			t.Errorf("Validate(%+v) = %v, want it to name %s", tt.cfg, err, tt.field)
		}
	}
	if err := (Config{Credential: cred}).Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
}

func TestNewCredential(t *testing.T) {
	if _, err := NewCredential(CredentialConfig{Kind: "static"}); err == nil || !strings.Contains(err.Error(), "Token") {
		t.Errorf("static without token: %v", err)
	}
	if _, err := NewCredential(CredentialConfig{Kind: "password"}); err == nil || !strings.Contains(err.Error(), "Kind") {
		t.Errorf("unknown kind: %v", err)
	}
	c, err := NewCredential(CredentialConfig{Kind: "static", Token: "abc"})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.GetToken(t.Context(), policyOptions())
	if err != nil || tok.Token != "abc" || !tok.ExpiresOn.After(time.Now()) {
		t.Errorf("static token = %+v, %v", tok, err)
	}
	if _, err := NewCredential(CredentialConfig{Kind: "managed", ClientID: "00000000-0000-0000-0000-000000000001"}); err != nil {
		t.Errorf("managed: %v", err)
	}
}

func TestHungVaultIsUnreachable(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.TryTimeout = 100 * time.Millisecond; c.MaxRetries = -1 })
	id := e.create(t, "slow", azkeys.KeyTypeRSA)
	e.srv.SetFaults(keyvault.Faults{Latency: time.Minute})
	st, err := e.kek.Probe(t.Context(), id)
	if err != nil || st.Outcome != Unreachable || !errors.Is(st.Err, ErrUnavailable) {
		t.Fatalf("probe of a hung vault = %s %v %v", st.Outcome, st.Err, err)
	}
}
