package status

import (
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/messaging"

	"github.com/cmkd-io/cmkd"
)

// GridCloudEvent is the CloudEvent the Event Grid relay of instance
// publishes for ev.
func GridCloudEvent(ev cmkd.StatusEvent, instance string) (messaging.CloudEvent, error) {
	g, err := encodeGridEvent(ev, instance)
	return g.ce, err
}
