package status

import "github.com/nats-io/nats.go"

type natsMsg struct {
	subject string
	body    []byte
}

func (m *natsMsg) build() *nats.Msg {
	msg := nats.NewMsg(m.subject)
	msg.Data = m.body
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	return msg
}
