package worker_test

import (
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/events"
	"github.com/cmkd-io/cmkd/events/webhook"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/worker"
)

// limitOpenFiles lowers this process's open-file limit to n until the test
// ends, as a container with a low limit has.
func limitOpenFiles(t *testing.T, n uint64) {
	t.Helper()
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	if n > old.Cur {
		t.Skipf("open-file limit %d is already below %d", old.Cur, n)
	}
	lim := old
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
			t.Errorf("restore open-file limit: %v", err)
		}
	})
}

func openFiles(t *testing.T) uint64 {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot count open files: %v", err)
	}
	return uint64(len(fds))
}

// TestHealthAnswersDuringWebhookFlood holds 200 connections to the webhook
// listener of a process whose open-file limit leaves room for the webhook's
// MaxConns and little more: health must still answer, because connections
// past the cap wait in the kernel's backlog instead of taking descriptors.
func TestHealthAnswersDuringWebhookFlood(t *testing.T) {
	const (
		flood    = 200
		maxConns = 20
		// headroom is what the worker (store, Key Vault client, health
		// listener and one health check) may open meanwhile.
		headroom = 40
	)
	if b, err := os.ReadFile("/proc/sys/net/core/somaxconn"); err == nil {
		if n, _ := strconv.Atoi(strings.TrimSpace(string(b))); n < flood {
			t.Skipf("net.core.somaxconn %d: the kernel's backlog cannot hold the flood", n)
		}
	}
	e := newEnv(t)
	healthAddr, hookAddr := freeAddr(t), freeAddr(t)
	src, err := webhook.New(webhook.Config{
		Listen: hookAddr, MaxConns: maxConns,
		Auth:    webhook.Auth{SharedSecret: "s3cret-for-tests"},
		Decoder: events.NewDecoder(events.DecoderConfig{}), Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	w := e.worker(e.openStore(), "w1", func(c *worker.Config) {
		c.HTTPAddr = healthAddr
		c.Sources = []events.Source{src}
	})
	start(t, w)
	eventually.True(t, 15*time.Second, "health and webhook listeners", func() bool {
		c, err := net.Dial("tcp", hookAddr)
		if err == nil {
			c.Close()
		}
		return err == nil && healthz(healthAddr) == nil
	})

	// The flood's own descriptors count against the limit too: they are in
	// this process.
	limitOpenFiles(t, openFiles(t)+flood+maxConns+headroom)
	held := 0
	for range flood {
		c, err := net.DialTimeout("tcp", hookAddr, 2*time.Second)
		if err != nil {
			continue
		}
		t.Cleanup(func() { c.Close() })
		held++
		_, _ = io.WriteString(c, "OPTIONS / HTTP/1.1\r\nHost: cmkd\r\nWebHook-Request-Origin: eventgrid.azure.net\r\n\r\n")
	}
	if err := healthz(healthAddr); err != nil {
		t.Fatalf("/healthz with %d connections held to the webhook: %v", held, err)
	}
	if held != flood {
		t.Errorf("held %d of %d webhook connections: the flood ran out of descriptors", held, flood)
	}
}
