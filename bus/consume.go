package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Pull settings of a Messages iterator: the server sends a heartbeat
// every ConsumeHeartbeat while a pull waits, so the loss of the server
// leading the consumer shows within two of them, not the library's 30 s.
const (
	ConsumeHeartbeat = 2 * time.Second
	consumeExpiry    = 5 * ConsumeHeartbeat
	// Reopening backs off between these bounds while the cluster elects a
	// new leader for the consumer.
	reopenInitial = 100 * time.Millisecond
	reopenMax     = 5 * time.Second
)

// Opener binds a durable pull consumer (creating or updating it, as at
// start-up) and returns a Messages iterator over it with the given pull
// options.
type Opener func(ctx context.Context, opts ...jetstream.PullMessagesOpt) (jetstream.MessagesContext, error)

// Messages is a pull consumer's iterator that rides through the loss of
// the server leading the consumer, a leader election or a reconnect: when
// the library's iterator reports a missed heartbeat or any other error,
// it is stopped and opened again, with backoff, as a restart of the
// process would, and the consumer's unacknowledged messages come back
// after their AckWait. Only a closed connection or the end of ctx ends
// it. A message held when the iterator is replaced is still settled
// through its own reply subject.
type Messages struct {
	open     Opener
	opts     []jetstream.PullMessagesOpt
	name     string
	log      *zap.Logger
	restarts func(reason string)

	mu      sync.Mutex
	it      jetstream.MessagesContext
	stopped bool
}

// NewMessages opens the first iterator; an error there is the caller's,
// as at start-up. restarts, if not nil, is told each time the iterator is
// opened again and why (heartbeat, error).
func NewMessages(ctx context.Context, name string, open Opener, log *zap.Logger, restarts func(reason string),
	opts ...jetstream.PullMessagesOpt) (*Messages, error) {
	opts = append([]jetstream.PullMessagesOpt{jetstream.PullExpiry(consumeExpiry), jetstream.PullHeartbeat(ConsumeHeartbeat)}, opts...)
	it, err := open(ctx, opts...)
	if err != nil {
		return nil, err
	}
	if restarts == nil {
		restarts = func(string) {}
	}
	return &Messages{open: open, opts: opts, name: name, log: log, restarts: restarts, it: it}, nil
}

// ErrConsumeStopped is what Next returns after Stop or once ctx ended.
var ErrConsumeStopped = errors.New("consume stopped")

// Next returns the next message. It blocks until one arrives, Stop is
// called (ErrConsumeStopped), ctx ends (ErrConsumeStopped) or the
// connection is closed for good.
func (m *Messages) Next(ctx context.Context) (jetstream.Msg, error) {
	for {
		it, err := m.current(ctx)
		if err != nil {
			return nil, err
		}
		msg, err := it.Next()
		if err == nil {
			return msg, nil
		}
		if m.isStopped() || ctx.Err() != nil {
			return nil, ErrConsumeStopped
		}
		if errors.Is(err, jetstream.ErrConnectionClosed) || errors.Is(err, nats.ErrConnectionClosed) {
			return nil, fmt.Errorf("%s: %w", m.name, err)
		}
		reason := "error"
		if errors.Is(err, jetstream.ErrNoHeartbeat) {
			reason = "heartbeat"
		}
		m.log.Warn("consumer lost its server, opening it again", zap.String("consumer", m.name),
			zap.String("reason", reason), zap.Error(err))
		m.restarts(reason)
		m.drop(it)
	}
}

// current returns the live iterator, opening a new one with backoff if
// the last was dropped.
func (m *Messages) current(ctx context.Context) (jetstream.MessagesContext, error) {
	m.mu.Lock()
	it, stopped := m.it, m.stopped
	m.mu.Unlock()
	if stopped {
		return nil, ErrConsumeStopped
	}
	if it != nil {
		return it, nil
	}
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(reopenInitial),
		backoff.WithMaxInterval(reopenMax), backoff.WithMaxElapsedTime(0))
	err := backoff.RetryNotify(func() error {
		if m.isStopped() {
			return backoff.Permanent(ErrConsumeStopped)
		}
		actx, cancel := context.WithTimeout(ctx, CallTimeout)
		defer cancel()
		opened, err := m.open(actx, m.opts...)
		if err != nil {
			return err
		}
		it = opened
		return nil
	}, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		m.log.Warn("consumer not open yet, trying again", zap.String("consumer", m.name),
			zap.Duration("in", next), zap.Error(err))
	})
	if err != nil {
		return nil, ErrConsumeStopped // only a stop or ctx ends the retries
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.stopped {
		it.Stop()
		return nil, ErrConsumeStopped
	}
	m.it = it
	m.log.Info("consumer open again", zap.String("consumer", m.name))
	return it, nil
}

func (m *Messages) drop(it jetstream.MessagesContext) {
	it.Stop()
	m.mu.Lock()
	if m.it == it {
		m.it = nil
	}
	m.mu.Unlock()
}

func (m *Messages) isStopped() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.stopped
}

// Stop ends the iteration: a Next under way returns ErrConsumeStopped.
func (m *Messages) Stop() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stopped = true
	if m.it != nil {
		m.it.Stop()
	}
}
