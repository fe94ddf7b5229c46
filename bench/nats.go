package bench

import (
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/cmkd-io/cmkd/internal/natstest"
)

// NATS is an embedded nats-server with JetStream and one connection to it.
type NATS struct {
	Server *server.Server
	Conn   *nats.Conn
}

// StartNATS starts a JetStream server on a free loopback port, storing
// under dir, and connects to it.
func StartNATS(dir string) (*NATS, error) {
	ns, err := natstest.Run(-1, filepath.Join(dir, "nats"))
	if err != nil {
		return nil, err
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
