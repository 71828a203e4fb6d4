package bus

import (
	"context"
	"errors"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
)

// CallTimeout bounds one request to the bus: a publish, a KV read or
// write, opening a consumer. A request caught on the connection to a
// server that died never gets its answer; bounded, the caller tries again
// on the reconnected connection within seconds instead of waiting out its
// own deadline (a saga step's minute), and a lease renewal queued behind
// a save waits no longer than this.
const CallTimeout = 4 * time.Second

// readAttempts is how often a read is tried before its error is returned;
// a read changes nothing, so trying again is always safe.
const readAttempts = 3

// Bounded returns js with every publish and every KV call of the buckets
// it binds bounded by CallTimeout, whatever the caller's deadline, and KV
// reads tried again after a timeout. Writes are tried once: a write whose
// answer was lost may have landed, and only its caller can tell (a
// publish by its message id, a compare-and-set by reading back).
func Bounded(js jetstream.JetStream) jetstream.JetStream { return boundedJS{js} }

type boundedJS struct{ jetstream.JetStream }

func (b boundedJS) Publish(ctx context.Context, subject string, data []byte, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return b.JetStream.Publish(ctx, subject, data, opts...)
}

func (b boundedJS) PublishMsg(ctx context.Context, msg *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return b.JetStream.PublishMsg(ctx, msg, opts...)
}

func (b boundedJS) KeyValue(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return wrapKV(b.JetStream.KeyValue(ctx, bucket))
}

func (b boundedJS) CreateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return wrapKV(b.JetStream.CreateKeyValue(ctx, cfg))
}

func (b boundedJS) UpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return wrapKV(b.JetStream.UpdateKeyValue(ctx, cfg))
}

func (b boundedJS) CreateOrUpdateKeyValue(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	return wrapKV(b.JetStream.CreateOrUpdateKeyValue(ctx, cfg))
}

func wrapKV(kv jetstream.KeyValue, err error) (jetstream.KeyValue, error) {
	if err != nil {
		return nil, err
	}
	return boundedKV{kv}, nil
}

type boundedKV struct{ jetstream.KeyValue }

func (b boundedKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return read(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) { return b.KeyValue.Get(ctx, key) })
}

func (b boundedKV) GetRevision(ctx context.Context, key string, revision uint64) (jetstream.KeyValueEntry, error) {
	return read(ctx, func(ctx context.Context) (jetstream.KeyValueEntry, error) {
		return b.KeyValue.GetRevision(ctx, key, revision)
	})
}

func (b boundedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return b.KeyValue.Put(ctx, key, value)
}

func (b boundedKV) PutString(ctx context.Context, key string, value string) (uint64, error) {
	return b.Put(ctx, key, []byte(value))
}

func (b boundedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return b.KeyValue.Create(ctx, key, value, opts...)
}

func (b boundedKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return b.KeyValue.Update(ctx, key, value, revision)
}

func (b boundedKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return b.KeyValue.Delete(ctx, key, opts...)
}

func (b boundedKV) Purge(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	ctx, cancel := context.WithTimeout(ctx, CallTimeout)
	defer cancel()
	return b.KeyValue.Purge(ctx, key, opts...)
}

// read tries get up to readAttempts times, each bounded, while ctx
// lasts; an answer (found or not) ends it.
func read(ctx context.Context, get func(context.Context) (jetstream.KeyValueEntry, error)) (jetstream.KeyValueEntry, error) {
	var err error
	for attempt := range readAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, errors.Join(err, ctx.Err())
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		actx, cancel := context.WithTimeout(ctx, CallTimeout)
		var e jetstream.KeyValueEntry
		e, err = get(actx)
		cancel()
		if err == nil || !retryable(ctx, err) {
			return e, err
		}
	}
	return nil, err
}

// retryable tells a request that got no answer from an answer, while the
// caller still waits.
func retryable(ctx context.Context, err error) bool {
	return ctx.Err() == nil && events.IsNoAnswer(err)
}
