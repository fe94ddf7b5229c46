package eventgrid

import (
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"
)

// allowedDelays are the only release delays Event Grid accepts, ascending.
var allowedDelays = []struct {
	d time.Duration
	v aznamespaces.ReleaseDelay
}{
	{0, aznamespaces.ReleaseDelayNoDelay},
	{10 * time.Second, aznamespaces.ReleaseDelayTenSeconds},
	{time.Minute, aznamespaces.ReleaseDelayOneMinute},
	{10 * time.Minute, aznamespaces.ReleaseDelayTenMinutes},
	{time.Hour, aznamespaces.ReleaseDelayOneHour},
}

// releaseDelay rounds d up to an allowed delay, so that an event is never
// retried sooner than asked; beyond an hour it is an hour.
func releaseDelay(d time.Duration) (aznamespaces.ReleaseDelay, time.Duration) {
	for _, a := range allowedDelays {
		if d <= a.d {
			return a.v, a.d
		}
	}
	last := allowedDelays[len(allowedDelays)-1]
	return last.v, last.d
}

// backoff is the delay before the next delivery of an event that failed on
// its deliveryCount-th delivery: base doubled per earlier delivery, or what
// the handler asked for.
func backoff(base time.Duration, deliveryCount int, asked time.Duration, hasAsked bool) time.Duration {
	if hasAsked && asked > 0 {
		return asked
	}
	if base <= 0 {
		return 0
	}
	d := base
	for i := 1; i < deliveryCount && d < time.Hour; i++ {
		d *= 2
	}
	return d
}
