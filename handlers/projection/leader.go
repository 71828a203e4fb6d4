package projection

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/events"
)

// Any number of projection processes may run, for availability; one at a
// time folds the events, the others stand by. They agree on which through
// the key LeaseKey of the workers bucket: a lease (holder, expiry) taken
// by compare-and-set when absent or expired and renewed while held. It
// carries the checkpoint too, the stream sequence up to which every event
// is folded, so a standby that takes over resumes right after it. What
// the last holder folded after its last renewal is folded again, which
// costs a read: Apply skips an event at or below a workspace's last_seq.
//
// Two folding at once (a holder that stalled past its expiry) do no harm
// either. Each folds in stream order from a checkpoint and writes an entry
// only by compare-and-set, so an entry only ever moves to a later event of
// its workspace, with every earlier one folded in.

// LeaseKey is the projection's key in events.WorkersBucket.
const LeaseKey = "projection"

// DefaultLeaseTTL is how long a projection that stops renewing keeps the
// lease: a standby takes over this long after a holder is lost, and at
// once after one stops cleanly.
const DefaultLeaseTTL = 10 * time.Second

// errLeaseLost means another projection process folds now.
var errLeaseLost = errors.New("the projection lease was taken over")

// leaseValue is the value of LeaseKey.
type leaseValue struct {
	Holder  string    `json:"holder,omitempty"`
	Expires time.Time `json:"expires"`
	Applied uint64    `json:"applied"` // every event up to it is folded
}

// lease is this process's view of LeaseKey.
type lease struct {
	kv      jetstream.KeyValue
	holder  string
	ttl     time.Duration
	rev     uint64    // of our last write, while held
	renewed time.Time // when that write was sent
}

func newLease(kv jetstream.KeyValue, ttl time.Duration) *lease {
	host, _ := os.Hostname()
	return &lease{kv: kv, holder: host + "-" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatInt(time.Now().UnixNano()%1e6, 10), ttl: ttl}
}

func (l *lease) value(now time.Time, applied uint64) []byte {
	b, _ := json.Marshal(leaseValue{Holder: l.holder, Expires: now.Add(l.ttl), Applied: applied})
	return b
}

// acquire takes the lease if nobody holds it and returns the checkpoint.
// first is asked for the checkpoint when there is no lease yet.
func (l *lease) acquire(ctx context.Context, now time.Time, first func(context.Context) (uint64, error)) (uint64, bool, error) {
	l.renewed = now
	e, err := l.kv.Get(ctx, LeaseKey)
	if events.IsNotFound(err) {
		applied, err := first(ctx)
		if err != nil {
			return 0, false, err
		}
		ok, err := l.took(l.kv.Create(ctx, LeaseKey, l.value(now, applied)))
		return applied, ok, err
	}
	if err != nil {
		return 0, false, fmt.Errorf("read the projection lease: %w", err)
	}
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return 0, false, fmt.Errorf("decode the projection lease: %w", err)
	}
	if v.Holder != "" && v.Holder != l.holder && v.Expires.After(now) {
		return 0, false, nil
	}
	ok, err := l.took(l.kv.Update(ctx, LeaseKey, l.value(now, v.Applied), e.Revision()))
	return v.Applied, ok, err
}

func (l *lease) took(rev uint64, err error) (bool, error) {
	if events.IsConflict(err) {
		return false, nil // another took it first
	}
	if err != nil {
		return false, fmt.Errorf("take the projection lease: %w", err)
	}
	l.rev = rev
	return true, nil
}

// renew extends the lease and records the checkpoint. It returns
// errLeaseLost once another holds it or our own expiry has passed.
func (l *lease) renew(ctx context.Context, now time.Time, applied uint64) error {
	rev, err := l.kv.Update(ctx, LeaseKey, l.value(now, applied), l.rev)
	if err == nil {
		l.rev, l.renewed = rev, now
		return nil
	}
	if events.IsConflict(err) || now.Sub(l.renewed) >= l.ttl {
		return fmt.Errorf("%w: %w", errLeaseLost, err)
	}
	return fmt.Errorf("renew the projection lease: %w", err)
}

// keepRenewed renews the lease with the checkpoint applied() in the
// background. The context it returns ends when the lease is taken over,
// with errLeaseLost as its cause; stop ends the renewals and returns that
// loss, or nil if the lease was still held.
func (l *lease) keepRenewed(ctx context.Context, applied func() uint64, log *zap.Logger) (held context.Context, stop func() error) {
	held, cancel := context.WithCancelCause(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := l.keep(held, applied, log); err != nil {
			cancel(err)
		}
	}()
	return held, func() error {
		cancel(nil)
		<-done
		if err := context.Cause(held); errors.Is(err, errLeaseLost) {
			return err
		}
		return nil
	}
}

// keep renews the lease every fifth of its time to live until ctx ends
// (nil) or the lease is taken over (errLeaseLost).
func (l *lease) keep(ctx context.Context, applied func() uint64, log *zap.Logger) error {
	t := time.NewTicker(l.ttl / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		kctx, cancel := context.WithTimeout(ctx, bus.CallTimeout)
		err := l.renew(kctx, time.Now(), applied())
		cancel()
		if errors.Is(err, errLeaseLost) {
			return err
		}
		if err != nil && ctx.Err() == nil {
			log.Warn("projection lease not renewed, trying again", zap.Error(err))
		}
	}
}

// release gives the lease up with the final checkpoint, so a standby
// takes over at once; a lease already lost is left alone.
func (l *lease) release(ctx context.Context, applied uint64) error {
	b, _ := json.Marshal(leaseValue{Applied: applied})
	_, err := l.kv.Update(ctx, LeaseKey, b, l.rev)
	if err != nil && !events.IsConflict(err) {
		return fmt.Errorf("release the projection lease: %w", err)
	}
	return nil
}

// Checkpoint is the stream sequence up to which the read model has every
// event folded, as last recorded by the projection (0 before any).
func Checkpoint(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	kv, err := js.KeyValue(ctx, events.WorkersBucket)
	if err != nil {
		return 0, fmt.Errorf("workers bucket: %w", err)
	}
	e, err := kv.Get(ctx, LeaseKey)
	if events.IsNotFound(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read the projection lease: %w", err)
	}
	var v leaseValue
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		return 0, fmt.Errorf("decode the projection lease: %w", err)
	}
	return v.Applied, nil
}

// legacyConsumer is the durable consumer projections read with before
// the lease: its ack floor is the first checkpoint after an upgrade.
const legacyConsumer = "projection"

// legacyCheckpoint is the first checkpoint: the old consumer's ack floor,
// or 0 (fold from the stream's start) on a new installation.
func legacyCheckpoint(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	c, err := js.Consumer(ctx, events.EventsStream, legacyConsumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("the projection's old consumer: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("the projection's old consumer: %w", err)
	}
	return info.AckFloor.Stream, nil
}

// dropLegacyConsumer deletes the old durable consumer once a lease holds
// the checkpoint, so nothing reports its growing backlog.
func dropLegacyConsumer(ctx context.Context, js jetstream.JetStream) error {
	err := js.DeleteConsumer(ctx, events.EventsStream, legacyConsumer)
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("delete the projection's old consumer: %w", err)
	}
	return nil
}
