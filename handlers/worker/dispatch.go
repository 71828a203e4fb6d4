package worker

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/sagas"
)

// dispatcher keeps one FIFO queue per workspace, drained by one goroutine
// each, with a semaphore per bulkhead bounding how many handle at once:
// commands of the workspaces' lifecycle (create, delete, retry) and side
// commands (membership, keys, quota) have slots of their own, so creates
// held up by one provider's outage cannot take every slot from member
// changes whose first steps need only the other.
type dispatcher struct {
	mu     sync.Mutex
	queues map[string][]jetstream.Msg // present while a goroutine drains it
	held   map[jetstream.Msg]struct{} // queued or running, heart-beaten
	seqs   map[uint64]struct{}        // stream sequences held
	sems   map[bool]chan struct{}     // by isLifecycle
	// blocked holds back, for blockFor, the workspaces whose command went
	// back to the stream (blocks.go).
	blocked  map[string]block
	blockFor time.Duration
	wg       sync.WaitGroup
	handle   func(context.Context, jetstream.Msg) error
	// settle acts on the outcome; false means the message went back to
	// the stream.
	settle func(jetstream.Msg, error) bool
}

func newDispatcher(lifecycle, side int, handle func(context.Context, jetstream.Msg) error, settle func(jetstream.Msg, error) bool) *dispatcher {
	return &dispatcher{queues: map[string][]jetstream.Msg{}, held: map[jetstream.Msg]struct{}{},
		seqs: map[uint64]struct{}{}, blocked: map[string]block{}, sems: map[bool]chan struct{}{true: make(chan struct{}, lifecycle), false: make(chan struct{}, side)},
		handle: handle, settle: settle}
}

// isLifecycle tells the commands of a workspace's lifecycle sagas from
// side commands, by subject; one that names no command counts as a
// lifecycle command (it is rejected at once anyway).
func isLifecycle(subject string) bool {
	switch commandOf(subject) {
	case "create", "delete", "retry", "unknown":
		return true
	}
	return false
}

// dispatch queues msg behind the workspace's earlier messages. A
// redelivery of a message still held (its AckWait ran out regardless) is
// dropped: the held copy settles it, and a second copy queued behind the
// workspace's later commands would apply out of order.
func (d *dispatcher) dispatch(ctx context.Context, key string, msg jetstream.Msg) {
	if d.behind(key, msg) {
		d.sendBack(ctx, msg)
		return
	}
	seq := streamSeq(msg)
	d.mu.Lock()
	if _, dup := d.seqs[seq]; dup && seq != 0 {
		d.mu.Unlock()
		return
	}
	d.seqs[seq] = struct{}{}
	d.held[msg] = struct{}{}
	q, active := d.queues[key]
	d.queues[key] = append(q, msg)
	d.mu.Unlock()
	if !active {
		d.wg.Add(1)
		go d.drain(ctx, key)
	}
}

func (d *dispatcher) drain(ctx context.Context, key string) {
	defer d.wg.Done()
	for {
		msg, ok := d.pop(key)
		if !ok {
			return
		}
		err := d.run(ctx, msg)
		d.release(msg)
		if d.settle(msg, err) {
			continue
		}
		// It went back to the stream: so do the ones queued behind it,
		// which must not overtake it, and the ones pulled until it is back.
		d.blockAfter(key, msg)
		for _, m := range d.takeAll(key) {
			d.release(m)
			d.settle(m, err)
		}
	}
}

func (d *dispatcher) run(ctx context.Context, msg jetstream.Msg) error {
	if ctx.Err() != nil {
		return sagas.ErrStopped
	}
	lifecycle := isLifecycle(msg.Subject())
	s := &slot{sem: d.sems[lifecycle]}
	if err := s.Acquire(ctx); err != nil {
		return err
	}
	defer s.Release()
	if !lifecycle {
		// A side saga gives its slot back while it waits to retry: member
		// removals waiting for MinIO must not stall adds, which need only
		// Keycloak (sagas.Slot).
		ctx = sagas.WithSlot(ctx, s)
	}
	return d.handle(ctx, msg)
}

// slot is one run's hold on a bulkhead's semaphore (sagas.Slot): the
// tokens it holds, all given back by Release.
type slot struct {
	sem    chan struct{}
	mu     sync.Mutex
	tokens int
}

func (s *slot) Acquire(ctx context.Context) error {
	s.mu.Lock()
	held := s.tokens > 0
	s.mu.Unlock()
	if held {
		return nil
	}
	select {
	case s.sem <- struct{}{}:
	case <-ctx.Done():
		return sagas.ErrStopped
	}
	s.mu.Lock()
	s.tokens++
	s.mu.Unlock()
	return nil
}

func (s *slot) Release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ; s.tokens > 0; s.tokens-- {
		<-s.sem
	}
}

func (d *dispatcher) pop(key string) (jetstream.Msg, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queues[key]
	if len(q) == 0 {
		delete(d.queues, key)
		return nil, false
	}
	d.queues[key] = q[1:]
	return q[0], true
}

func (d *dispatcher) takeAll(key string) []jetstream.Msg {
	d.mu.Lock()
	defer d.mu.Unlock()
	q := d.queues[key]
	d.queues[key] = nil
	return q
}

func (d *dispatcher) release(msg jetstream.Msg) {
	d.mu.Lock()
	delete(d.held, msg)
	delete(d.seqs, streamSeq(msg))
	d.mu.Unlock()
}

func streamSeq(msg jetstream.Msg) uint64 {
	meta, err := msg.Metadata()
	if err != nil {
		return 0
	}
	return meta.Sequence.Stream
}

// heartbeat tells the server every interval that each held message is
// still being worked on, until the returned stop is called.
func (d *dispatcher) heartbeat(interval time.Duration, log *zap.Logger) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				for _, m := range d.snapshot() {
					if err := m.InProgress(); err != nil {
						log.Debug("worker: in-progress failed", zap.String("subject", m.Subject()), zap.Error(err))
					}
				}
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (d *dispatcher) snapshot() []jetstream.Msg {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make([]jetstream.Msg, 0, len(d.held))
	for m := range d.held {
		out = append(out, m)
	}
	return out
}

// wait returns once every queue is drained.
func (d *dispatcher) wait() { d.wg.Wait() }
