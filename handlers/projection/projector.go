package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// Projector folds WORKSPACE_EVENTS into the read model while it holds
// the projection lease (leader.go), and stands by while another does.
type Projector struct {
	js      jetstream.JetStream
	kv      jetstream.KeyValue
	schema  events.SchemaValidator
	log     *zap.Logger
	lease   *lease
	applied atomic.Uint64 // the checkpoint: every event up to it is folded
	// metrics are kept even when exported nowhere, so applying never
	// checks for them; sampleEvery is how often the lag is asked for.
	metrics     *metrics
	sampleEvery time.Duration
}

// lagEvery is how often the projection's lag is sampled: often enough
// for a dashboard, one small request per projection.
const lagEvery = 5 * time.Second

// RegisterMetrics exports the projection's lag series with reg.
func (p *Projector) RegisterMetrics(reg prometheus.Registerer) error {
	return p.metrics.register(reg)
}

// NewProjector binds to the projection and workers buckets, which must
// exist (events.EnsureTopology creates them).
func NewProjector(ctx context.Context, js jetstream.JetStream, schema events.SchemaValidator, log *zap.Logger) (*Projector, error) {
	kv, err := js.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		return nil, fmt.Errorf("projection bucket: %w", err)
	}
	workers, err := js.KeyValue(ctx, events.WorkersBucket)
	if err != nil {
		return nil, fmt.Errorf("workers bucket: %w", err)
	}
	return &Projector{js: js, kv: kv, schema: schema, log: log, lease: newLease(workers, DefaultLeaseTTL),
		metrics: newMetrics(), sampleEvery: lagEvery}, nil
}

// SetHolder names this process in the lease, unique among the live
// projection processes. A process restarted under the same name takes
// the lease back at once instead of after it expires. Without a name, a
// random one is used. Call it before Run.
func (p *Projector) SetHolder(name string) { p.lease.holder = name }

// Run folds events while this process holds the lease and stands by
// while another does, until ctx ends; then it gives the lease up. A fold
// that fails (its consumer not opened while the cluster elects a leader,
// say) gives the lease up too and is tried again, by this process or
// another, rather than ending the process.
func (p *Projector) Run(ctx context.Context) error {
	t := time.NewTicker(p.lease.ttl / 5)
	defer t.Stop()
	for {
		from, ok, err := p.acquire(ctx)
		if err != nil && ctx.Err() == nil {
			p.log.Warn("projection lease not taken, trying again", zap.Error(err))
		}
		if ok {
			p.log.Info("projection lease taken: folding events", zap.Uint64("after", from))
			err := p.fold(ctx, from)
			switch {
			case ctx.Err() != nil:
				return nil
			case errors.Is(err, errLeaseLost):
				p.log.Warn("projection lease lost: standing by", zap.Error(err))
			default:
				p.log.Error("projection stopped folding; trying again", zap.Error(err))
				p.metrics.consumerRestarted("error")
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (p *Projector) acquire(ctx context.Context) (uint64, bool, error) {
	kctx, cancel := context.WithTimeout(ctx, bus.CallTimeout)
	defer cancel()
	first := func(ctx context.Context) (uint64, error) { return legacyCheckpoint(ctx, p.js) }
	from, ok, err := p.lease.acquire(kctx, time.Now(), first)
	if !ok || err != nil {
		return 0, false, err
	}
	if err := dropLegacyConsumer(kctx, p.js); err != nil {
		p.log.Warn("projection: the old consumer stays", zap.Error(err))
	}
	return from, true, nil
}

// fold applies the events after from while the lease holds, renewing
// it with the checkpoint, and gives it up when ctx ends.
func (p *Projector) fold(ctx context.Context, from uint64) error {
	p.applied.Store(from)
	p.metrics.leading.Set(1)
	defer p.metrics.leading.Set(0)
	lctx, stop := p.lease.keepRenewed(ctx, p.applied.Load, p.log)
	sampled := p.sampleLag(lctx)
	err := p.consume(lctx)
	lost := stop() // ends lctx, so the sampler stops too
	sampled()
	if lost != nil {
		return lost
	}
	p.giveUp()
	return err
}

// consume applies the events after the checkpoint, one at a time in
// stream order, until ctx ends. An apply that fails is retried in place,
// never skipped, because a later event of the same workspace must not
// overtake it.
func (p *Projector) consume(ctx context.Context) error {
	it, err := bus.NewMessages(ctx, "projection", p.openConsumer, p.log, p.metrics.consumerRestarted)
	if err != nil {
		return fmt.Errorf("projection messages: %w", err)
	}
	stopped := context.AfterFunc(ctx, it.Stop) // Next waits on the iterator alone
	defer stopped()
	defer it.Stop()
	for {
		msg, err := it.Next(ctx)
		if err == nil {
			err = p.handle(ctx, msg)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("projection: %w", err)
		}
	}
}

// giveUp releases the lease held, with the checkpoint reached, so a
// standby goes on at once.
func (p *Projector) giveUp() {
	rctx, cancel := context.WithTimeout(context.Background(), bus.CallTimeout)
	defer cancel()
	if err := p.lease.release(rctx, p.applied.Load()); err != nil {
		p.log.Warn("projection lease not released; a standby takes over when it expires", zap.Error(err))
	}
}

// openConsumer reads the events after the checkpoint with an ordered
// consumer, which delivers them in stream order and starts over by
// itself from where it was after a gap or a lost server; bus.Messages
// opens it again from the checkpoint when that fails, so the projection
// rides through a node loss.
func (p *Projector) openConsumer(ctx context.Context, opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: p.applied.Load() + 1}
	cons, err := p.js.OrderedConsumer(ctx, events.EventsStream, cfg)
	if err != nil {
		return nil, fmt.Errorf("projection consumer: %w", err)
	}
	return cons.Messages(opts...)
}

// sampleLag records, every sampleEvery until ctx ends, how many events
// of the stream are not folded yet. It returns a function that waits for
// the sampler to stop.
func (p *Projector) sampleLag(ctx context.Context) func() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(p.sampleEvery)
		defer t.Stop()
		for {
			sctx, cancel := context.WithTimeout(ctx, bus.CallTimeout)
			if s, err := p.js.Stream(sctx, events.EventsStream); err == nil {
				p.metrics.observeLag(s.CachedInfo().State.LastSeq, p.applied.Load())
			}
			cancel()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { <-done }
}

func (p *Projector) handle(ctx context.Context, msg jetstream.Msg) error {
	meta, err := msg.Metadata()
	if err != nil {
		return fmt.Errorf("message metadata: %w", err)
	}
	seq := meta.Sequence.Stream
	env, err := events.Parse(msg.Data(), p.schema)
	if err != nil {
		// An event that breaks its schema can never be applied; the stream
		// keeps it for an operator, the projection moves on.
		p.log.Error("projection: event rejected", zap.Uint64("seq", seq), zap.Error(err))
		p.applied.Store(seq)
		return nil
	}
	op := func() error {
		err := p.ApplyToStore(ctx, env, seq)
		if err != nil {
			p.log.Warn("projection apply failed, retrying", zap.String("workspace", env.Subject), zap.Error(err))
		}
		return err
	}
	if err := backoff.Retry(op, backoff.WithContext(backoff.NewExponentialBackOff(backoff.WithMaxElapsedTime(0)), ctx)); err != nil {
		return fmt.Errorf("apply %s seq %d: %w", env.Type, seq, err)
	}
	p.applied.Store(seq)
	p.metrics.appliedEvent(meta, time.Now())
	return nil
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
