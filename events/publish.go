package events

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/tracing"
)

// SchemaValidator checks a whole envelope against the schema of its type.
type SchemaValidator interface {
	Validate(raw []byte) error
}

// Publisher validates envelopes and publishes them to JetStream with the
// envelope id as Nats-Msg-Id, so a re-published event is dropped by the
// stream's duplicate window.
type Publisher struct {
	js     jetstream.JetStream
	schema SchemaValidator
	ttl    time.Duration // 0: kept as long as the stream keeps anything
}

// NewPublisher returns a publisher; schema may not be nil: nothing leaves
// without passing its schema.
func NewPublisher(js jetstream.JetStream, schema SchemaValidator) *Publisher {
	return &Publisher{js: js, schema: schema}
}

// Expiring returns a publisher whose messages the stream removes ttl
// after storing them (its AllowMsgTTL must be on): for commands repeated
// so often that keeping each forever would bury the audit trail.
func (p *Publisher) Expiring(ttl time.Duration) *Publisher {
	return &Publisher{js: p.js, schema: p.schema, ttl: ttl}
}

// Published is what JetStream answered.
type Published struct {
	Stream    string
	Sequence  uint64
	Duplicate bool
}

// Publish validates env and publishes it on its subject.
func (p *Publisher) Publish(ctx context.Context, env Envelope) (Published, error) {
	msg, err := p.Message(env)
	if err != nil {
		return Published{}, err
	}
	tracing.Inject(ctx, msg.Header) // the command's handling joins the caller's trace
	opts := []jetstream.PublishOpt{jetstream.WithMsgID(env.ID)}
	if p.ttl > 0 {
		opts = append(opts, jetstream.WithMsgTTL(p.ttl))
	}
	var ack *jetstream.PubAck
	for attempt := 1; ; attempt++ {
		ack, err = p.js.PublishMsg(ctx, msg, opts...)
		if err == nil || attempt == publishAttempts || ctx.Err() != nil || !IsNoAnswer(err) {
			break
		}
		// Safe to repeat: the stream drops a copy that had landed, by its id.
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(attempt) * publishPause):
		}
	}
	if err != nil {
		return Published{}, fmt.Errorf("publish %s %s: %w", env.Type, env.ID, err)
	}
	return Published{Stream: ack.Stream, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// A publish that got no answer (its server died, a leader election) is
// tried publishAttempts times, publishPause more apart each time, each
// attempt bounded by the connection (bus.Bounded), before the caller hears.
const (
	publishAttempts = 3
	publishPause    = 200 * time.Millisecond
)

// Message builds the NATS message for env after checking its schema.
func (p *Publisher) Message(env Envelope) (*nats.Msg, error) {
	subject, err := env.NATSSubject()
	if err != nil {
		return nil, err
	}
	raw, err := json.Marshal(env)
	if err != nil {
		return nil, fmt.Errorf("marshal %s: %w", env.Type, err)
	}
	if err := p.schema.Validate(raw); err != nil {
		return nil, fmt.Errorf("refusing to publish %s: %w", env.Type, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = raw
	msg.Header.Set(HeaderContentType, ContentTypeCloudEvents)
	return msg, nil
}

// Header values set on every published message.
const (
	HeaderContentType      = "Content-Type"
	ContentTypeCloudEvents = "application/cloudevents+json"
)

// Parse decodes and schema-checks a raw message body.
func Parse(raw []byte, schema SchemaValidator) (Envelope, error) {
	if err := schema.Validate(raw); err != nil {
		return Envelope{}, err
	}
	var env Envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return Envelope{}, fmt.Errorf("decode envelope: %w", err)
	}
	return env, nil
}
