package throughput

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	egemu "github.com/cmkd-io/cmkd/emulator/eventgrid"
	cevents "github.com/cmkd-io/cmkd/events"
	egsrc "github.com/cmkd-io/cmkd/events/eventgrid"
)

// batch is the most events one Event Grid receive returns (the service's
// limit, and the benchmark issue's batch size); publishes use it too.
const batch = 100

// publishEG queues evs on the topic, in batches as a publisher would send.
func (r *rig) publishEG(evs []egemu.CloudEvent) error {
	for i := 0; i < len(evs); i += batch {
		if err := r.eg.Publish(topic, evs[i:min(i+batch, len(evs))]...); err != nil {
			return err
		}
	}
	return nil
}

// rawEG is the Event Grid baseline: the aznamespaces receiver alone, the
// loop anyone would write — receive up to 100, acknowledge them in one call
// — until n events are acknowledged. No decoding, no handler.
func (r *rig) rawEG(ctx context.Context, n int) (measured, error) {
	m := measured{events: n}
	rc, err := aznamespaces.NewReceiverClientWithSharedKeyCredential(r.eg.URL(), topic, sub,
		azcore.NewKeyCredential(egKey), &aznamespaces.ReceiverClientOptions{ClientOptions: azcore.ClientOptions{
			Transport: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: r.eg.CAPool()}}},
			Retry:     policy.RetryOptions{MaxRetries: -1},
		}})
	if err != nil {
		return m, err
	}
	start := time.Now()
	for done := 0; done < n; {
		got, err := receiveAck(ctx, rc)
		if err != nil {
			return m, fmt.Errorf("raw event grid, after %d events: %w", done, err)
		}
		done += got
	}
	m.elapsed = time.Since(start)
	m.unacked = r.egUnacked()
	return m, nil
}

// receiveAck receives one batch and acknowledges all of it.
func receiveAck(ctx context.Context, rc *aznamespaces.ReceiverClient) (int, error) {
	resp, err := rc.ReceiveEvents(ctx, &aznamespaces.ReceiveEventsOptions{
		MaxEvents: to32(batch), MaxWaitTime: to32(10),
	})
	if err != nil {
		return 0, err
	}
	tokens := make([]string, 0, len(resp.Details))
	for _, d := range resp.Details {
		tokens = append(tokens, *d.BrokerProperties.LockToken)
	}
	if len(tokens) == 0 {
		return 0, fmt.Errorf("receive returned no events")
	}
	ack, err := rc.AcknowledgeEvents(ctx, tokens, nil)
	if err != nil {
		return 0, err
	}
	if len(ack.FailedLockTokens) > 0 {
		return 0, fmt.Errorf("%d of %d acknowledgements failed", len(ack.FailedLockTokens), len(tokens))
	}
	return len(tokens), nil
}

func to32(v int32) *int32 { return &v }

// cmkdEG is cmkd's Event Grid pipeline: its source (receive, decode,
// handle, acknowledge each event) handing events to Worker.Handle, which
// reconciles the key with a probe of the Key Vault emulator. Receives ask
// for batches of 100 with 100 events in flight, so a full batch can be
// taken whenever the previous one is done.
// A nil handle means Worker.Handle; noop measures the source alone. Either
// runs in the worker's middleware, as `cmkd run` runs it.
func (r *rig) cmkdEG(ctx context.Context, n int, handle cevents.Handler) (measured, error) {
	if handle == nil {
		handle = r.w.Handle
	}
	handle = r.w.Wrap("eventgrid", handle)
	src, err := egsrc.New(egsrc.Config{
		Endpoint: r.eg.URL(), Topic: topic, Subscription: sub, Key: egKey, RootCAs: r.eg.CAPool(),
		MaxEvents: batch, MaxInFlight: batch, MaxWait: 10 * time.Second,
		Decoder: r.dec, Logger: r.log,
	})
	if err != nil {
		return measured{}, err
	}
	m, err := r.pipeline(ctx, n, src, handle, func(context.Context) (bool, error) {
		return r.eg.Pending(topic, sub) == 0, nil
	})
	m.unacked = r.egUnacked()
	return m, err
}

// egUnacked counts events not acknowledged: still queued or dead-lettered.
func (r *rig) egUnacked() int {
	return r.eg.Pending(topic, sub) + len(r.eg.DeadLetters(topic, sub))
}
