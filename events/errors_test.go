package events_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/cmkd-io/cmkd/events"
)

// Settle is the one mapping from a handler's error to what every source
// does with the delivery.
func TestSettle(t *testing.T) {
	boom := errors.New("store down")
	tests := []struct {
		name  string
		err   error
		want  events.Verdict
		delay time.Duration
	}{
		{"handled", nil, events.Ack, 0},
		{"permanent", events.Permanent(boom), events.DeadLetter, 0},
		{"wrapped permanent", fmt.Errorf("event x: %w", events.Permanent(boom)), events.DeadLetter, 0},
		{"malformed", fmt.Errorf("%w: no id", events.ErrMalformed), events.DeadLetter, 0},
		{"transient with a delay", events.Transient(boom, 5*time.Second), events.Retry, 5 * time.Second},
		{"wrapped transient", fmt.Errorf("event x: %w", events.Transient(boom, time.Second)), events.Retry, time.Second},
		{"negative delay", events.Transient(boom, -time.Second), events.Retry, 0},
		{"any other error", boom, events.Retry, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, d := events.Settle(tt.err)
			if v != tt.want || d != tt.delay {
				t.Fatalf("Settle(%v) = %s, %s; want %s, %s", tt.err, v, d, tt.want, tt.delay)
			}
		})
	}
	if events.Ack.String() != "ack" || events.Retry.String() != "retry" || events.DeadLetter.String() != "dead_letter" {
		t.Fatal("verdict names changed: they are metric label values")
	}
}
