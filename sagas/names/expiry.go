package names

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// Expiry frees the names whose hold has run out: each expired tombstone
// is announced as name.released (reason expired) and then deleted, so
// the bucket does not keep one entry for every name ever deleted; the
// delete markers left behind are purged once old. Every worker may run
// one: the event's id is derived from the name and its hold, so the
// stream keeps one, and the delete is a compare-and-set on the
// tombstone's revision, so a create that took the name meanwhile wins.
type Expiry struct {
	kv       *KV
	pub      sagas.EventPublisher
	log      *zap.Logger
	interval time.Duration
}

// DefaultExpiryInterval is how often Expiry looks: how late an expired
// hold is announced. Its work grows with the names held, so not often.
const DefaultExpiryInterval = 10 * time.Minute

// NewExpiry returns an Expiry over the names bucket (interval 0: the
// default).
func NewExpiry(kv *KV, pub sagas.EventPublisher, log *zap.Logger, interval time.Duration) (*Expiry, error) {
	if kv == nil || pub == nil {
		return nil, errors.New("name expiry: names and publisher are required")
	}
	if interval <= 0 {
		interval = DefaultExpiryInterval
	}
	if log == nil {
		log = zap.NewNop()
	}
	return &Expiry{kv: kv, pub: pub, log: log, interval: interval}, nil
}

// Run sweeps at once, then every interval, until ctx ends.
func (e *Expiry) Run(ctx context.Context) error {
	failed := func(err error) { e.log.Warn("name expiry: sweep failed; trying again", zap.Error(err)) }
	if err := e.Sweep(ctx, time.Now()); err != nil && ctx.Err() == nil {
		failed(err)
	}
	sagas.Every(ctx, e.interval, e.Sweep, failed)
	return nil
}

// Sweep frees every name whose hold ended by now.
func (e *Expiry) Sweep(ctx context.Context, now time.Time) error {
	lister, err := e.kv.kv.ListKeys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return fmt.Errorf("list names: %w", err)
	}
	var errs []error
	if lister != nil {
		for name := range lister.Keys() {
			if err := e.expire(ctx, name, now); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := e.kv.kv.PurgeDeletes(ctx); err != nil {
		errs = append(errs, fmt.Errorf("purge old delete markers: %w", err))
	}
	return errors.Join(errs...)
}

func (e *Expiry) expire(ctx context.Context, name string, now time.Time) error {
	r, rev, err := e.kv.Get(ctx, name)
	if err != nil || rev == 0 || r.HeldUntil == nil || r.Held(now) {
		return err
	}
	if err := Announce(ctx, e.pub, name, events.NameReleasedExpired, events.DefaultSource, *r.HeldUntil); err != nil {
		return err
	}
	if err := e.kv.Unreserve(ctx, name, rev); err != nil && !errors.Is(err, ErrTaken) {
		return err
	}
	e.log.Info("name expiry: held name freed", zap.String("name", name), zap.Time("held_until", *r.HeldUntil))
	return nil
}

// Announce publishes name.released for the hold of name that ended (until)
// for reason, by actor; its id is derived from the name and the hold, so
// announcing one release twice leaves one event.
func Announce(ctx context.Context, pub sagas.EventPublisher, name, reason, actor string, until time.Time) error {
	id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(events.DefaultSource+"/name/"+name+"/"+until.UTC().Format(time.RFC3339Nano))).String()
	u := until.UTC()
	env, err := events.New(name, &events.NameReleased{Reason: reason, HeldUntil: &u}, events.Meta{ID: id, Actor: actor})
	if err != nil {
		return err
	}
	if _, err := pub.Publish(ctx, env); err != nil {
		return fmt.Errorf("announce the release of %s: %w", name, err)
	}
	return nil
}
