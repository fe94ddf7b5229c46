// Package natstest runs a real embedded nats-server with JetStream for
// tests, so that every package tests against NATS itself, not a mock.
package natstest

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Start runs nats-server with JetStream on loopback at port (-1: a free
// one), storing in dir (empty: a temporary directory). It is shut down when
// the test ends; a test may shut it down earlier and Start another on the
// same port and dir to play an outage.
func Start(tb testing.TB, port int, dir string) *server.Server {
	tb.Helper()
	if dir == "" {
		dir = tb.TempDir()
	}
	ns, err := Run(port, dir)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(ns.Shutdown)
	return ns
}

// Run is Start for harnesses without a test (the benchmarks, the chaos
// harness): the caller shuts the server down.
func Run(port int, dir string) (*server.Server, error) {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: dir, NoLog: true, NoSigs: true})
	if err != nil {
		return nil, fmt.Errorf("embedded nats-server: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(20 * time.Second) {
		ns.Shutdown()
		return nil, errors.New("embedded nats-server did not start within 20 s")
	}
	return ns, nil
}

// JetStream connects to url, reconnecting for ever, and returns a
// JetStream client; the connection closes when the test ends.
func JetStream(tb testing.TB, url string) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}
