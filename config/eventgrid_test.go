package config_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"

	"github.com/cmkd-io/cmkd/config"
	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
)

// status.eventgrid builds a working publisher with each of the three
// credentials azeventgrid takes: an access key, a SAS token and an Entra
// token (here the static one the emulators use), each publishing to an
// emulated topic; none configured builds none; a wrong key is refused
// by the topic.
func TestStatusEventGridClient(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	topic, err := eventgridtopic.Start(eventgridtopic.Config{Name: "status", Key: key, AcceptBearer: true})
	if err != nil {
		t.Fatal(err)
	}
	defer topic.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, topic.CAPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, err := config.StatusEventGridClient(&config.Config{}); c != nil || err != nil {
		t.Fatalf("no status.eventgrid: %v, %v; want no client", c, err)
	}
	sinks := map[string]config.EventGridSink{
		"key":   {Key: key},
		"sas":   {SAS: sas(topic.URL(), key, time.Now().Add(time.Hour))},
		"entra": {},
	}
	for name, sink := range sinks {
		sink.Endpoint, sink.CAFile = topic.URL(), ca
		cfg := &config.Config{Status: config.StatusConfig{EventGrid: sink},
			KeyVault: config.KVConfig{Credential: "static", Token: "t"}}
		c, err := config.StatusEventGridClient(cfg)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ev, err := messaging.NewCloudEvent("cmkd/test", "io.cmkd.sealed", map[string]string{"tenant": "acme"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.PublishCloudEvents(t.Context(), []messaging.CloudEvent{ev}, nil); err != nil {
			t.Errorf("%s: publish: %v", name, err)
		}
	}
	if n := len(topic.Published()); n != len(sinks) {
		t.Fatalf("topic received %d events, want %d", n, len(sinks))
	}
	bad := &config.Config{Status: config.StatusConfig{EventGrid: config.EventGridSink{Endpoint: topic.URL(), CAFile: ca,
		Key: base64.StdEncoding.EncodeToString([]byte("another key, another key, another"))}}}
	c, err := config.StatusEventGridClient(bad)
	if err != nil {
		t.Fatal(err)
	}
	ev, _ := messaging.NewCloudEvent("cmkd/test", "io.cmkd.sealed", nil, nil)
	if _, err := c.PublishCloudEvents(t.Context(), []messaging.CloudEvent{ev}, nil); err == nil {
		t.Fatal("a wrong key was accepted")
	}
}

// sas signs a topic SAS token as the Azure tools do.
func sas(endpoint, key string, expiry time.Time) string {
	text := fmt.Sprintf("r=%s&e=%s", url.QueryEscape(endpoint), url.QueryEscape(expiry.UTC().Format(time.RFC3339)))
	k, _ := base64.StdEncoding.DecodeString(key)
	h := hmac.New(sha256.New, k)
	h.Write([]byte(text))
	return text + "&s=" + url.QueryEscape(base64.StdEncoding.EncodeToString(h.Sum(nil)))
}

// status.eventgrid is refused when its endpoint is not https or it names
// both a key and a SAS token.
func TestStatusEventGridValidation(t *testing.T) {
	for sink, ok := range map[config.EventGridSink]bool{
		{Endpoint: "https://t.westeurope-1.eventgrid.azure.net/api/events", Key: "k"}:           true,
		{Endpoint: "http://t.westeurope-1.eventgrid.azure.net/api/events"}:                      false,
		{Endpoint: "https://t.westeurope-1.eventgrid.azure.net/api/events", Key: "k", SAS: "s"}: false,
	} {
		c := &config.Config{Status: config.StatusConfig{EventGrid: sink},
			Store:    config.StoreConfig{DSN: "x.db"},
			KeyVault: config.KVConfig{Credential: "static", Token: "t", Vaults: []string{"https://a.vault.azure.net"}}}
		c.SetDefaults()
		if err := c.Validate(); (err == nil) != ok {
			t.Errorf("status.eventgrid %+v: %v, want accepted %v", sink, err, ok)
		}
	}
}
