package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// SpecVersion is the CloudEvents version of every envelope.
const SpecVersion = "1.0"

// ContentTypeJSON is the only data content type we produce or accept.
const ContentTypeJSON = "application/json"

// Envelope is a CloudEvents 1.0 event in structured JSON mode, with the
// extensions the contract adds: who asked (actor) and the causal chain.
type Envelope struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype"`
	Data            json.RawMessage `json:"data"`
	Actor           string          `json:"actor"`
	CorrelationID   string          `json:"correlationid"`
	CausationID     string          `json:"causationid,omitempty"`
}

// Meta is what a caller says about an event besides its data.
type Meta struct {
	ID            string // defaults to a new UUID
	Source        string // defaults to DefaultSource
	Actor         string
	CorrelationID string // defaults to the event's own id
	CausationID   string
	Time          time.Time // defaults to now
}

// DefaultSource names this system as the producer of an event.
const DefaultSource = "urn:eo-workspaces:provisioner"

// New wraps a typed payload in an envelope for the given workspace.
func New(workspace string, data Payload, meta Meta) (Envelope, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return Envelope{}, fmt.Errorf("marshal %s data: %w", data.EventType(), err)
	}
	env := Envelope{
		SpecVersion:     SpecVersion,
		ID:              meta.ID,
		Source:          meta.Source,
		Type:            data.EventType(),
		Subject:         workspace,
		Time:            meta.Time.UTC(),
		DataContentType: ContentTypeJSON,
		Data:            raw,
		Actor:           meta.Actor,
		CorrelationID:   meta.CorrelationID,
		CausationID:     meta.CausationID,
	}
	if env.ID == "" {
		env.ID = uuid.NewString()
	}
	if env.Source == "" {
		env.Source = DefaultSource
	}
	if meta.Time.IsZero() {
		env.Time = time.Now().UTC()
	}
	if env.CorrelationID == "" {
		env.CorrelationID = env.ID
	}
	return env, nil
}

// Caused returns the metadata for an event caused by env: same actor and
// correlation, env as the cause.
func Caused(env Envelope) Meta {
	return Meta{Actor: env.Actor, CorrelationID: env.CorrelationID, CausationID: env.ID}
}

// DecodeData unmarshals the envelope's data into the Go type registered
// for its type. Unknown fields are an error, as the schemas say.
func (e Envelope) DecodeData() (Payload, error) {
	spec, ok := Lookup(e.Type)
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownType, e.Type)
	}
	p := spec.New()
	if err := decodeStrict(e.Data, p); err != nil {
		return nil, fmt.Errorf("decode %s data: %w", e.Type, err)
	}
	return p, nil
}

// ErrUnknownType is returned for an event type no Go type is registered for.
var ErrUnknownType = errors.New("unknown event type")

// Subject returns the NATS subject the envelope is published on.
func (e Envelope) NATSSubject() (string, error) {
	spec, ok := Lookup(e.Type)
	if !ok {
		return "", fmt.Errorf("%w: %q", ErrUnknownType, e.Type)
	}
	return spec.Subject(e.Subject)
}
