package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/cmkd-io/cmkd/emulator/eventgrid"
	"github.com/cmkd-io/cmkd/emulator/keyvault"
)

// Names of the Event Grid topic and subscription that stand in for a Key
// Vault system topic and cmkd's event subscription.
const (
	devTopic        = "keyvault"
	devSubscription = "cmkd"
)

type emulatorFlags struct {
	dir      string
	kvAddr   string
	egAddr   string
	token    string
	egKey    string
	throttle int
	purge    bool
	hsm      bool
	vault    string
	json     bool
}

func runEmulator(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f emulatorFlags
	fs := newFlags("emulator", "emulator [flags]", stderr)
	fs.StringVar(&f.dir, "data", "./cmkd-data", "directory for the emulators' CA certificate")
	fs.StringVar(&f.kvAddr, "kv-addr", "127.0.0.1:0", "Key Vault emulator listen address (port 0: a free one)")
	fs.StringVar(&f.egAddr, "eg-addr", "127.0.0.1:0", "Event Grid emulator listen address (port 0: a free one)")
	fs.StringVar(&f.token, "token", "", "accept only this bearer token at the Key Vault emulator (empty: any)")
	fs.StringVar(&f.egKey, "eg-key", "dev-key", "SharedAccessKey the Event Grid emulator requires")
	fs.IntVar(&f.throttle, "throttle", keyvault.DefaultThrottleLimit, "Key Vault operations allowed per 10 s (negative: no limit)")
	fs.BoolVar(&f.purge, "purge-protection", true, "the vault has purge protection, as cmkd requires of a customer's vault (false: a test vault)")
	fs.BoolVar(&f.hsm, "managed-hsm", false, "answer as a Managed HSM (oct-HSM keys, per-second limits)")
	fs.StringVar(&f.vault, "vault-name", "dev", "vault name used in Key Vault events")
	fs.BoolVar(&f.json, "json", false, "print the endpoints as one JSON object instead of text")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usagef("emulator takes no arguments, got %q", fs.Args())
	}
	if err := os.MkdirAll(f.dir, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w (choose another with --data)", err)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	eg, kv, err := startEmulators(f, log)
	if err != nil {
		return err
	}
	defer kv.Close()
	defer eg.Close()
	if err := printEmulatorEndpoints(stdout, f, kv, eg); err != nil {
		return err
	}
	<-ctx.Done()
	fmt.Fprintln(stderr, "stopping emulators")
	return nil
}

func startEmulators(f emulatorFlags, log *slog.Logger) (*eventgrid.Server, *keyvault.Server, error) {
	eg, err := eventgrid.Start(eventgrid.Config{
		Addr:        f.egAddr,
		CAFile:      filepath.Join(f.dir, "eventgrid-ca.pem"),
		Key:         f.egKey,
		AllowBearer: true,
		Topics:      map[string][]string{devTopic: {devSubscription}},
		Logger:      log.With("emulator", "eventgrid"),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("start event grid emulator on %s: %w", f.egAddr, err)
	}
	kv, err := keyvault.Start(keyvault.Config{
		Addr:          f.kvAddr,
		CAFile:        filepath.Join(f.dir, "keyvault-ca.pem"),
		Token:         f.token,
		VaultName:     f.vault,
		ThrottleLimit: f.throttle, PurgeProtection: f.purge, ManagedHSM: f.hsm,
		Sink:   forwardTo(eg, devTopic, log),
		Logger: log.With("emulator", "keyvault"),
	})
	if err != nil {
		return nil, nil, errors.Join(fmt.Errorf("start key vault emulator on %s: %w", f.kvAddr, err), eg.Close())
	}
	return eg, kv, nil
}

// forwardTo plays the part of a Key Vault system topic: every event the Key
// Vault emulator raises is published to an Event Grid topic.
func forwardTo(eg *eventgrid.Server, topic string, log *slog.Logger) func(keyvault.CloudEvent) {
	return func(ev keyvault.CloudEvent) {
		err := eg.Publish(topic, eventgrid.CloudEvent{
			SpecVersion:     ev.SpecVersion,
			ID:              ev.ID,
			Source:          ev.Source,
			Subject:         ev.Subject,
			Type:            ev.Type,
			Time:            ev.Time,
			DataContentType: ev.DataContentType,
			Data:            ev.Data,
		})
		if err != nil {
			log.Error("forward key vault event", "type", ev.Type, "id", ev.ID, "err", err)
		}
	}
}

// emulatorEndpoints is what `cmkd emulator --json` prints.
type emulatorEndpoints struct {
	KeyVault     string `json:"keyvault"`
	KeyVaultCA   string `json:"keyvault_ca"`
	EventGrid    string `json:"eventgrid"`
	EventGridCA  string `json:"eventgrid_ca"`
	EventGridKey string `json:"eventgrid_key"`
	Topic        string `json:"topic"`
	Subscription string `json:"subscription"`
}

func printEmulatorEndpoints(w io.Writer, f emulatorFlags, kv *keyvault.Server, eg *eventgrid.Server) error {
	ep := emulatorEndpoints{
		KeyVault: kv.URL(), KeyVaultCA: filepath.Join(f.dir, "keyvault-ca.pem"),
		EventGrid: eg.URL(), EventGridCA: filepath.Join(f.dir, "eventgrid-ca.pem"), EventGridKey: f.egKey,
		Topic: devTopic, Subscription: devSubscription,
	}
	if f.json {
		return json.NewEncoder(w).Encode(ep)
	}
	_, err := fmt.Fprintf(w, `cmkd emulators are running (Ctrl-C stops them).

  Key Vault    %[1]s
               CA certificate: %[2]s
               control API:    %[1]s/_emulator/{access,throttle,faults,calls}
  Event Grid   %[3]s
               topic %[5]q, subscription %[6]q, SharedAccessKey %[7]q
               CA certificate: %[4]s

Key Vault events (new version, near expiry, expired) are published to the
Event Grid topic, as a Key Vault system topic would.

Try, in another terminal:
  curl -s --cacert %[2]s -H 'Authorization: Bearer dev' \
    -H 'Content-Type: application/json' -d '{"kty":"RSA","key_size":2048}' \
    '%[1]s/keys/demo/create?api-version=2025-07-01'
  curl -s --cacert %[2]s -H 'Authorization: Bearer dev' '%[1]s/_emulator/calls'
`, ep.KeyVault, ep.KeyVaultCA, ep.EventGrid, ep.EventGridCA, ep.Topic, ep.Subscription, ep.EventGridKey)
	return err
}
