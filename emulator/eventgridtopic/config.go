package eventgridtopic

import (
	"errors"
	"fmt"
	"log/slog"
)

// Schema is an event schema a topic accepts or a subscription delivers.
type Schema string

// Schemas, named as in Azure's inputSchema and eventDeliverySchema.
const (
	SchemaCloudEvents Schema = "CloudEventSchemaV1_0"
	SchemaEventGrid   Schema = "EventGridSchema"
)

// Defaults for Config.
const (
	DefaultAddr = "127.0.0.1:0"
	DefaultName = "topic1"
	// MaxRequestBytes is the service's limit on a publish request body.
	MaxRequestBytes = 1 << 20
	// MaxEventBytes is the service's limit on one event.
	MaxEventBytes = 1 << 20
)

// Config describes an emulated topic.
type Config struct {
	// Addr is the listen address; DefaultAddr picks a free loopback port.
	Addr string
	// Name is the topic name, used in the topic field of Event Grid schema
	// events and in dead-letter paths. Empty is DefaultName.
	Name string
	// Key is the topic's access key, as the base64 text Azure shows. It is
	// accepted in the aeg-sas-key header and signs aeg-sas-token tokens. A
	// key that is not base64 signs tokens with its raw bytes. Empty, with
	// AcceptBearer false, means no authentication is required.
	Key string
	// AcceptBearer accepts any "Authorization: Bearer <token>" without
	// validating the token.
	AcceptBearer bool
	// Schema restricts publishes to one input schema; empty accepts both.
	Schema Schema
	// CAFile, when set, receives the PEM of the CA that signed the
	// server's certificate, so that other processes can trust it.
	CAFile string
	// DeadLetterDir, when set, receives every dead letter as a JSON file,
	// laid out as Event Grid lays out dead-letter blobs:
	// <topic>/<subscription>/yyyy/MM/dd/HH/<id>.json.
	DeadLetterDir string
	// MaxRequestBytes and MaxEventBytes override the service's 1 MB limits,
	// for tests; zero keeps them.
	MaxRequestBytes, MaxEventBytes int
	// Logger receives request and delivery logs; nil discards them.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = MaxRequestBytes
	}
	if c.MaxEventBytes == 0 {
		c.MaxEventBytes = MaxEventBytes
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports the first invalid field.
func (c *Config) Validate() error {
	if !validName(c.Name, 3, 50) {
		return fmt.Errorf("topic name %q: want 3 to 50 letters, digits and hyphens", c.Name)
	}
	switch c.Schema {
	case "", SchemaCloudEvents, SchemaEventGrid:
	default:
		return fmt.Errorf("input schema %q: want %s or %s", c.Schema, SchemaCloudEvents, SchemaEventGrid)
	}
	if c.MaxRequestBytes < 0 || c.MaxEventBytes < 0 {
		return errors.New("size limits must not be negative")
	}
	return nil
}

// validName follows Azure's rule for topic and subscription names.
func validName(s string, minLen, maxLen int) bool {
	if len(s) < minLen || len(s) > maxLen {
		return false
	}
	for _, r := range s {
		ok := r == '-' || (r >= '0' && r <= '9') || (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}
