package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startNATSWithPermissions runs nats-server with deploy/nats/permissions.conf
// included as its header says, users cmkd and audit with those permissions
// and an admin user without limits (the operator, who owns the streams).
func startNATSWithPermissions(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	perms, err := os.ReadFile("../../deploy/nats/permissions.conf")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "permissions.conf"), perms, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("CMKD_NATS_PASSWORD", "cmkd-secret")
	t.Setenv("AUDIT_NATS_PASSWORD", "audit-secret")
	conf := fmt.Sprintf(`host: 127.0.0.1
port: -1
jetstream { store_dir: %q }
include './permissions.conf'
authorization {
  users = [
    {user: cmkd,  password: $CMKD_NATS_PASSWORD,  permissions: $CMKD_PERMISSIONS}
    {user: audit, password: $AUDIT_NATS_PASSWORD, permissions: $AUDIT_PERMISSIONS}
    {user: admin, password: admin-secret}
  ]
}
`, filepath.Join(dir, "js"))
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server refuses the permissions: %v", err)
	}
	opts.NoLog, opts.NoSigs = true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server did not start")
	}
	t.Cleanup(ns.Shutdown)
	return ns.ClientURL()
}

func connectAs(t *testing.T, url, user, password string) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	nc, err := nats.Connect(url, nats.UserInfo(user, password), nats.ErrorHandler(func(*nats.Conn, *nats.Subscription, error) {}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return nc, js
}

// TestDeployNATSPermissions: with deploy/nats/permissions.conf, cmkd in
// check-only mode starts and consumes the work queue as its user and may
// publish status events and seal broadcasts; an audit subscriber reads
// CMKD_STATUS through its own consumer but cannot publish a status event,
// nor delete or purge the stream.
func TestDeployNATSPermissions(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	url := startNATSWithPermissions(t)
	_, admin := connectAs(t, url, "admin", "admin-secret")
	applyStreamFiles(t, ctx, admin)

	// cmkd itself, as user cmkd, checking the streams and pulling.
	ep, _ := startEmulatorCommand(t, ctx)
	dir := t.TempDir()
	cfg := emulatorConfig(t, ep, dir)
	cfg.NATS = NATSConfig{URL: url, User: "cmkd", Password: "cmkd-secret", CheckStreams: true}
	cfg.Sources.Queue.Enabled = true
	runCheckOnly(t, ctx, cfg, dir, admin)

	// What the relay and the seal broadcast do, as user cmkd.
	cnc, cjs := connectAs(t, url, "cmkd", "cmkd-secret")
	if _, err := cjs.Publish(ctx, "cmkd.status.acme.sealed", []byte(`{"specversion":"1.0"}`), jetstream.WithMsgID("e1")); err != nil {
		t.Fatalf("cmkd cannot publish a status event: %v", err)
	}
	if err := cnc.Publish("cmkd.control.seal.acme", nil); err != nil {
		t.Fatal(err)
	}
	if err := cnc.Flush(); err != nil || cnc.LastError() != nil {
		t.Fatalf("cmkd cannot broadcast a seal: %v %v", err, cnc.LastError())
	}

	// An audit subscriber reads, and only reads.
	_, ajs := connectAs(t, url, "audit", "audit-secret")
	cons, err := ajs.CreateOrUpdateConsumer(ctx, "CMKD_STATUS", jetstream.ConsumerConfig{Durable: "audit", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("audit cannot make its consumer: %v", err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
	if err != nil {
		t.Fatalf("audit cannot read CMKD_STATUS: %v", err)
	}
	if msg.Subject() != "cmkd.status.acme.sealed" || msg.Ack() != nil {
		t.Errorf("audit read %s", msg.Subject())
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	if _, err := ajs.Publish(short, "cmkd.status.acme.unsealed", []byte(`{}`)); err == nil {
		t.Error("audit published a status event")
	}
	if err := ajs.DeleteStream(short, "CMKD_STATUS"); err == nil {
		t.Error("audit deleted CMKD_STATUS")
	}
	st, err := admin.Stream(ctx, "CMKD_STATUS")
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Purge(ctx); err == nil {
		t.Error("CMKD_STATUS allowed a purge: deny_purge is off")
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Errorf("CMKD_STATUS holds %d messages, want cmkd's one", info.State.Msgs)
	}
}
