package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/config"
	"github.com/cmkd-io/cmkd/emulator/eventgridtopic"
	"github.com/cmkd-io/cmkd/events/status"
)

// auditTailEventGrid prints status events as the status topic
// (status.eventgrid) delivers them to a webhook served here: Event Grid
// keeps no history, so it prints what is published from now on. Against
// the emulated topic of `cmkd dev --status-eventgrid` it subscribes
// itself; against Azure the operator points an event subscription at
// listen (over HTTPS, e.g. through an ingress).
func auditTailEventGrid(ctx context.Context, cfg *Config, listen, tenant string, asJSON bool, stdout, stderr io.Writer) error {
	topic := cfg.Status.EventGrid
	if topic.Endpoint == "" {
		return errors.New("audit tail --eventgrid: status.eventgrid is not configured (run `cmkd dev --status-eventgrid`, or set status.eventgrid.endpoint)")
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("audit tail --eventgrid: listen on %s: %w (choose another with --listen)", listen, err)
	}
	var mu sync.Mutex // deliveries may come in parallel; lines must not mix
	print := func(ev cmkd.StatusEvent) error {
		if tenant != "" && ev.Tenant != tenant {
			return nil
		}
		mu.Lock()
		defer mu.Unlock()
		return printStatus(stdout, ev, asJSON)
	}
	srv := &http.Server{Handler: status.EventGridReceiver(print), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(slog.DiscardHandler, slog.LevelError)}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()
	endpoint := "http://" + ln.Addr().String() + "/"
	if !cfg.KeyVault.Emulator {
		fmt.Fprintf(stderr, "listening on %s: create an Event Grid subscription on the status topic with this webhook "+
			"(reachable over HTTPS, CloudEvents schema); its handshake is answered here. Ctrl-C stops.\n", ln.Addr())
		<-ctx.Done()
		return nil
	}
	remote, err := statusTopicRemote(topic)
	if err != nil {
		return err
	}
	name := "audit-tail-" + randomHex(4)
	if err := remote.Subscribe(ctx, eventgridtopic.RemoteSubscription{Name: name, Endpoint: endpoint,
		Schema: eventgridtopic.SchemaCloudEvents}); err != nil {
		return fmt.Errorf("audit tail --eventgrid: subscribe to %s: %w", topic.Endpoint, err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = remote.Unsubscribe(ctx, name)
	}()
	fmt.Fprintf(stderr, "receiving status events from Event Grid topic %s (subscription %s); Ctrl-C stops\n", topic.Endpoint, name)
	<-ctx.Done()
	return nil
}

// statusTopicRemote reaches the emulated status topic's control API.
func statusTopicRemote(topic config.EventGridSink) (eventgridtopic.Remote, error) {
	pool, err := config.LoadCA(topic.CAFile)
	if err != nil {
		return eventgridtopic.Remote{}, fmt.Errorf("status.eventgrid.ca_file: %w", err)
	}
	hc := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: tlsTrusting(pool)}}
	return eventgridtopic.Remote{URL: topic.Endpoint, Key: topic.Key, HTTP: hc}, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
