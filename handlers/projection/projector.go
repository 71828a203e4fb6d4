package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// ConsumerName is the durable consumer the projection reads with.
const ConsumerName = "projection"

// Projector consumes WORKSPACE_EVENTS and writes the read model.
type Projector struct {
	js     jetstream.JetStream
	kv     jetstream.KeyValue
	schema events.SchemaValidator
	log    *zap.Logger
	// metrics are kept even when exported nowhere, so applying never
	// checks for them; sampleEvery is how often the lag is asked for.
	metrics     *metrics
	sampleEvery time.Duration
}

// lagEvery is how often the projection consumer's lag is sampled: often
// enough for a dashboard, one small request per projection.
const lagEvery = 5 * time.Second

// RegisterMetrics exports the projection's lag series with reg.
func (p *Projector) RegisterMetrics(reg prometheus.Registerer) error {
	return p.metrics.register(reg)
}

// NewProjector binds to the projection bucket, which must exist
// (events.EnsureTopology creates it).
func NewProjector(ctx context.Context, js jetstream.JetStream, schema events.SchemaValidator, log *zap.Logger) (*Projector, error) {
	kv, err := js.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		return nil, fmt.Errorf("projection bucket: %w", err)
	}
	return &Projector{js: js, kv: kv, schema: schema, log: log, metrics: newMetrics(), sampleEvery: lagEvery}, nil
}

func consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "Folds workspace events into the read model",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxAckPending: 1000,
	}
}

// Run consumes until ctx ends. Messages are applied one at a time in
// stream order; an apply that fails is retried in place, never skipped,
// because a later event of the same workspace must not overtake it.
func (p *Projector) Run(ctx context.Context) error {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, events.EventsStream, consumerConfig())
	if err != nil {
		return fmt.Errorf("projection consumer: %w", err)
	}
	defer bus.SamplePending(ctx, cons, p.sampleEvery, p.metrics.observeConsumer)()
	it, err := bus.NewMessages(ctx, ConsumerName, p.openConsumer, p.log, p.metrics.consumerRestarted)
	if err != nil {
		return fmt.Errorf("projection messages: %w", err)
	}
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
		case <-stopped:
		}
		it.Stop()
	}()
	for {
		msg, err := it.Next(ctx)
		if err != nil {
			if errors.Is(err, bus.ErrConsumeStopped) {
				return nil
			}
			return fmt.Errorf("projection next: %w", err)
		}
		if err := p.handle(ctx, msg); err != nil {
			if ctx.Err() != nil {
				return nil // unacked: redelivered to whoever runs next
			}
			return err
		}
	}
}

// openConsumer binds the projection's consumer, as at start-up, and
// pulls from it; bus.Messages calls it again when the server leading the
// consumer is lost, so the projection rides through a node loss.
func (p *Projector) openConsumer(ctx context.Context, opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	cons, err := p.js.CreateOrUpdateConsumer(ctx, events.EventsStream, consumerConfig())
	if err != nil {
		return nil, fmt.Errorf("projection consumer: %w", err)
	}
	return cons.Messages(opts...)
}

func (p *Projector) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	env, err := events.Parse(msg.Data(), p.schema)
	if err != nil {
		// An event that breaks its schema can never be applied; the stream
		// keeps it for an operator, the projection moves on.
		p.log.Error("projection: event rejected", zap.Uint64("seq", meta.Sequence.Stream), zap.Error(err))
		return msg.Term()
	}
	op := func() error {
		err := p.ApplyToStore(ctx, env, meta.Sequence.Stream)
		if err != nil {
			_ = msg.InProgress()
			p.log.Warn("projection apply failed, retrying", zap.String("workspace", env.Subject), zap.Error(err))
		}
		return err
	}
	if err := backoff.Retry(op, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(0)), ctx)); err != nil {
		return fmt.Errorf("apply %s seq %d: %w", env.Type, meta.Sequence.Stream, err)
	}
	p.metrics.appliedEvent(meta, time.Now())
	return msg.Ack()
}

// ApplyToStore folds env into the stored workspace with compare-and-set
// on the KV revision, re-reading when another writer got there first.
func (p *Projector) ApplyToStore(ctx context.Context, env events.Envelope, seq uint64) error {
	for {
		ws, rev, err := p.load(ctx, env.Subject)
		if err != nil {
			return err
		}
		changed, err := readmodel.Apply(&ws, env, seq)
		if err != nil || !changed {
			return err
		}
		raw, err := json.Marshal(ws)
		if err != nil {
			return fmt.Errorf("marshal workspace: %w", err)
		}
		if rev == 0 {
			_, err = p.kv.Create(ctx, env.Subject, raw)
		} else {
			_, err = p.kv.Update(ctx, env.Subject, raw, rev)
		}
		if events.IsConflict(err) {
			continue
		}
		if err != nil {
			return fmt.Errorf("store workspace %s: %w", env.Subject, err)
		}
		return nil
	}
}

func (p *Projector) load(ctx context.Context, name string) (readmodel.Workspace, uint64, error) {
	e, err := p.kv.Get(ctx, name)
	if events.IsNotFound(err) {
		return readmodel.Workspace{}, 0, nil
	}
	if err != nil {
		return readmodel.Workspace{}, 0, fmt.Errorf("load workspace %s: %w", name, err)
	}
	var ws readmodel.Workspace
	if err := json.Unmarshal(e.Value(), &ws); err != nil {
		return readmodel.Workspace{}, 0, fmt.Errorf("decode workspace %s: %w", name, err)
	}
	return ws, e.Revision(), nil
}
