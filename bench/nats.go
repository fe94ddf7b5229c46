package bench

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// NATS is an embedded nats-server with JetStream and one connection to it.
type NATS struct {
	Server *server.Server
	Conn   *nats.Conn
}

// StartNATS starts a JetStream server on a free loopback port, storing
// under dir, and connects to it.
func StartNATS(dir string) (*NATS, error) {
	ns, err := server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "nats"),
		NoSigs: true, NoLog: true,
	})
	if err != nil {
		return nil, fmt.Errorf("embedded nats: %w", err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		ns.Shutdown()
		return nil, fmt.Errorf("embedded nats did not start")
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		ns.Shutdown()
		return nil, err
	}
	return &NATS{Server: ns, Conn: nc}, nil
}

// Close closes the connection and stops the server.
func (n *NATS) Close() {
	n.Conn.Close()
	n.Server.Shutdown()
	n.Server.WaitForShutdown()
}
