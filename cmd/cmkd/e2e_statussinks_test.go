package main

import (
	"bufio"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd"
	"github.com/cmkd-io/cmkd/internal/eventually"
	"github.com/cmkd-io/cmkd/internal/natstest"
)

// eventGridTail is a running `cmkd audit tail --eventgrid --json`: what
// the status topic delivered, by event id.
type eventGridTail struct {
	mu  sync.Mutex
	evs map[string]cmkd.StatusEvent
}

func startEventGridTail(t *testing.T, d *devProc) *eventGridTail {
	t.Helper()
	cmd := exec.Command(d.bin, "audit", "tail", "--eventgrid", "--json")
	cmd.Env = append(os.Environ(), "CMKD_CONFIG="+filepath.Join(d.dir, "cmkd.yaml"))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tail := &eventGridTail{evs: map[string]cmkd.StatusEvent{}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ev, err := cmkd.ParseStatusEvent(sc.Bytes())
			if err != nil {
				t.Errorf("audit tail --eventgrid printed %q: %v", sc.Text(), err)
				continue
			}
			tail.mu.Lock()
			tail.evs[ev.ID] = ev
			tail.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		<-done
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("audit tail --eventgrid's stderr:\n%s", stderr.String())
		}
	})
	eventually.True(t, 30*time.Second, "audit tail --eventgrid to subscribe", func() bool {
		return strings.Contains(stderr.String(), "receiving status events from Event Grid topic")
	})
	return tail
}

func (e *eventGridTail) ids() map[string]cmkd.StatusEvent {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make(map[string]cmkd.StatusEvent, len(e.evs))
	for id, ev := range e.evs {
		out[id] = ev
	}
	return out
}

func (e *eventGridTail) has(tenant string, kind cmkd.Kind) bool {
	for _, ev := range e.ids() {
		if ev.Tenant == tenant && ev.Kind == kind {
			return true
		}
	}
	return false
}

// TestE2EStatusBothSinks runs `cmkd dev --status-eventgrid` on a NATS
// server of its own, and stops that NATS for 60 s: the Event Grid topic
// keeps receiving status events meanwhile (read through `cmkd audit tail
// --eventgrid`), and once NATS is back every status event is on both —
// each once on NATS, and every id on Event Grid — with the same id, type,
// tenant and data.
func TestE2EStatusBothSinks(t *testing.T) {
	natsDir := t.TempDir()
	ns := natstest.Start(t, -1, natsDir)
	port := ns.Addr().(*net.TCPAddr).Port
	d := startDev(t, t.TempDir(), "--nats", ns.ClientURL(), "--status-eventgrid")
	if d.cfg.Status.EventGrid.Endpoint == "" {
		t.Fatal("cmkd dev --status-eventgrid wrote no status.eventgrid")
	}
	tail := startEventGridTail(t, d)
	js := d.jetstream()

	d.must("", "vault", "create-key", "cmk")
	d.must("", "tenant", "add", "acme", "--key", d.keyURL("cmk"))
	d.must("", "vault", "rotate", "cmk")
	waitStatus(t, js, "acme", "rewrap.completed", 1, 30*time.Second)
	eventually.True(t, 30*time.Second, "rewrap.completed for acme on Event Grid", func() bool {
		return tail.has("acme", cmkd.KindRewrapCompleted)
	})

	ns.Shutdown()
	ns.WaitForShutdown()
	down := time.Now()
	d.must("", "tenant", "add", "beta", "--key", d.keyURL("cmk"))
	d.must("", "vault", "rotate", "cmk")
	eventually.True(t, 40*time.Second, "rewrap.completed for beta on Event Grid while NATS is down", func() bool {
		return tail.has("beta", cmkd.KindRewrapCompleted)
	})
	time.Sleep(time.Until(down.Add(30 * time.Second)))
	d.must("", "vault", "rotate", "cmk")
	eventually.True(t, 25*time.Second, "a third rewrap on Event Grid while NATS is down", func() bool {
		n := 0
		for _, ev := range tail.ids() {
			if ev.Kind == cmkd.KindRewrapCompleted {
				n++
			}
		}
		return n >= 5 // acme once before; acme and beta twice during
	})
	time.Sleep(time.Until(down.Add(60 * time.Second)))
	natstest.Start(t, port, natsDir)

	var onNATS map[string]cmkd.StatusEvent
	eventually.True(t, 60*time.Second, "every status event on both sinks", func() bool {
		evs := statusEvents(t, js) // fails on a duplicate id
		onNATS = map[string]cmkd.StatusEvent{}
		for _, e := range evs {
			onNATS[e.ID] = e.StatusEvent
		}
		return sameIDs(onNATS, tail.ids())
	})
	for id, n := range onNATS {
		g := tail.ids()[id]
		a, _ := n.MarshalData()
		b, _ := g.MarshalData()
		if g.Kind != n.Kind || g.Tenant != n.Tenant || string(a) != string(b) || g.Source != n.Source {
			t.Errorf("event %s differs: NATS %+v, Event Grid %+v", id, n, g)
		}
	}
	if len(onNATS) < 8 {
		t.Fatalf("%d status events, want the rewraps and tenant events of the run", len(onNATS))
	}
}

func sameIDs(a, b map[string]cmkd.StatusEvent) bool {
	if len(a) != len(b) {
		return false
	}
	for id := range a {
		if _, ok := b[id]; !ok {
			return false
		}
	}
	return true
}
