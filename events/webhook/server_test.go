package webhook_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/webhook"
	"github.com/cmkd-io/cmkd/internal/eventually"
)

// runSource runs cfg's Source with Run on a free loopback port until the
// test ends and returns the address.
func runSource(t *testing.T, cfg webhook.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = ln.Addr().String()
	ln.Close()
	cfg.Decoder = events.NewDecoder(events.DecoderConfig{})
	cfg.Logger = slog.New(slog.DiscardHandler)
	cfg.Auth = webhook.Auth{SharedSecret: secret}
	src, err := webhook.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, func(context.Context, events.Event) error { return nil }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	eventually.True(t, 10*time.Second, "webhook listening", func() bool {
		c, err := net.Dial("tcp", cfg.Listen)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cfg.Listen
}

// keepAlive is a client connection that made one request and keeps the
// connection open, as an idle keep-alive client does.
type keepAlive struct {
	net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *keepAlive {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &keepAlive{Conn: c, r: bufio.NewReader(c)}
}

// send writes the CloudEvents handshake, which needs no credentials.
func (k *keepAlive) send(t *testing.T) {
	t.Helper()
	if _, err := io.WriteString(k, "OPTIONS / HTTP/1.1\r\nHost: cmkd\r\nWebHook-Request-Origin: eventgrid.azure.net\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
}

// answer reads the response to send within d.
func (k *keepAlive) answer(d time.Duration) (int, error) {
	_ = k.SetReadDeadline(time.Now().Add(d))
	resp, err := http.ReadResponse(k.r, nil)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// closedByServer reports whether the server closed the connection within d.
func (k *keepAlive) closedByServer(d time.Duration) bool {
	_ = k.SetReadDeadline(time.Now().Add(d))
	_, err := k.r.ReadByte()
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

func TestWebhookServerClosesIdleConnections(t *testing.T) {
	const idle = 300 * time.Millisecond
	addr := runSource(t, webhook.Config{IdleTimeout: idle})
	conns := make([]*keepAlive, 50)
	for i := range conns {
		conns[i] = dial(t, addr)
		conns[i].send(t)
		if code, err := conns[i].answer(10 * time.Second); err != nil || code != http.StatusOK {
			t.Fatalf("connection %d: handshake %d, %v", i, code, err)
		}
	}
	for i, c := range conns {
		if !c.closedByServer(10 * time.Second) {
			t.Fatalf("connection %d still open 10s after its last request; IdleTimeout is %s", i, idle)
		}
	}
}

func TestWebhookServerCapsConnections(t *testing.T) {
	const limit = 4
	addr := runSource(t, webhook.Config{MaxConns: limit, IdleTimeout: time.Minute})
	held := make([]*keepAlive, limit)
	for i := range held {
		held[i] = dial(t, addr)
		held[i].send(t)
		if code, err := held[i].answer(10 * time.Second); err != nil || code != http.StatusOK {
			t.Fatalf("connection %d of %d: handshake %d, %v", i+1, limit, code, err)
		}
	}
	extra := dial(t, addr)
	extra.send(t)
	// Not served is an absence: give the server a moment to show it.
	if code, err := extra.answer(300 * time.Millisecond); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("connection over MaxConns %d was served: %d, %v", limit, code, err)
	}
	held[0].Close()
	if code, err := extra.answer(10 * time.Second); err != nil || code != http.StatusOK {
		t.Fatalf("waiting connection, once another closed: %d, %v", code, err)
	}
}
