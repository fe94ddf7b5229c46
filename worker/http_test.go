package worker_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/worker"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// ready reports whether the worker at addr answers /readyz with 200: its
// first reconcile pass is done.
func ready(addr string) bool {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// healthz asks addr's /healthz on a connection of its own, as the kubelet
// does.
func healthz(addr string) error {
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := c.Get("http://" + addr + "/healthz")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

func TestHealthServerClosesIdleConnections(t *testing.T) {
	const idle = 300 * time.Millisecond
	e := newEnv(t)
	addr := freeAddr(t)
	w := e.worker(e.openStore(), "w1", func(c *worker.Config) { c.HTTPAddr = addr; c.HTTPIdleTimeout = idle })
	start(t, w)
	eventually.True(t, 15*time.Second, "health listener", func() bool { return healthz(addr) == nil })

	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: cmkd\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if _, err := r.ReadByte(); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("health connection still open 10s after its last request; HTTPIdleTimeout is %s", idle)
	}
}
