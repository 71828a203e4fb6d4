package worker

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// PartitionConsumerName is the durable consumer of partition p.
func PartitionConsumerName(p int) string { return fmt.Sprintf("%s-p%d", ConsumerName, p) }

func (w *Worker) partitionConsumerConfig(p int) jetstream.ConsumerConfig {
	c := w.consumerConfig()
	c.Durable = PartitionConsumerName(p)
	c.Description = fmt.Sprintf("Drives workspace sagas from the commands of partition %d", p)
	c.FilterSubject = events.PartitionSubjectFilter(p)
	return c
}

// feed consumes partition i into the dispatcher until its stop or ctx,
// then waits until none of its commands is held here.
func (p *partitions) feed(ctx context.Context, i int, o *ownedPart) {
	defer p.feeders.Done()
	defer func() {
		p.awaitIdle(i)
		close(o.drained)
		p.poke()
	}()
	select {
	case <-p.legacyDone: // an earlier version's commands come first
	case <-o.stop:
		return
	case <-ctx.Done():
		return
	}
	for pause := time.Duration(0); ; pause = p.w.cfg.NakDelay {
		if !sleepUnless(ctx, o.stop, pause) {
			return
		}
		cons, err := p.w.deps.JS.CreateOrUpdateConsumer(ctx, events.PartitionsStream, p.w.partitionConsumerConfig(i))
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("partition consumer", zap.Int("partition", i), zap.Error(err))
			}
			continue
		}
		pending, ok := p.awaitHandover(ctx, cons, o.stop)
		if !ok {
			return
		}
		if err := p.takeLeftovers(ctx, cons, pending); err != nil {
			p.log.Warn("partition leftovers", zap.Int("partition", i), zap.Error(err))
			continue
		}
		err = p.consumeOnce(ctx, cons, o.stop)
		if err == nil {
			return
		}
		p.log.Warn("partition consumer stopped, starting it again", zap.Int("partition", i), zap.Error(err))
		p.w.metrics.consumerRestarted(restartReason(err))
	}
}

// consumeOnce fetches its partition's commands in batches into the
// dispatcher until stop or ctx. A stop takes effect between batches, when
// no pull request is open, so nothing is left delivered to this worker
// but never handled: the next owner sees the partition as this one left
// it (batches, not a continuous pull, for exactly that).
func (p *partitions) consumeOnce(ctx context.Context, cons jetstream.Consumer, stop <-chan struct{}) error {
	size := 2 * (p.w.cfg.Concurrency + p.w.cfg.SideConcurrency)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-stop:
			return nil
		default:
		}
		batch, err := cons.Fetch(size, jetstream.FetchMaxWait(fetchWait))
		if err != nil {
			return fmt.Errorf("partition fetch: %w", err)
		}
		for m := range batch.Messages() {
			if ctx.Err() != nil {
				// Stopping: left unacknowledged rather than sent back (the
				// rest of this batch would bring them back at once); the
				// next owner takes them in stream order.
				continue
			}
			msg := wrapPartition(m)
			p.d.dispatch(ctx, workspaceKey(msg.Subject()), msg)
		}
		if err := batch.Error(); err != nil {
			return fmt.Errorf("partition fetch: %w", err)
		}
	}
}

// fetchWait bounds one batch, and so how long a stop waits.
const fetchWait = time.Second

// awaitHandover holds a new owner back while commands delivered to the
// previous one are unacknowledged (a dead owner's, Nak'd ones, acks in
// flight): once their AckWait or Nak delay has passed, the server hands
// them out before any command never delivered. It returns how many are
// left, and false on stop.
func (p *partitions) awaitHandover(ctx context.Context, cons jetstream.Consumer, stop <-chan struct{}) (int, bool) {
	deadline := time.Now().Add(max(p.w.cfg.AckWait, p.w.cfg.NakDelay) + 500*time.Millisecond)
	pending := 0
	for time.Now().Before(deadline) {
		info, err := cons.Info(ctx)
		if err == nil {
			if pending = info.NumAckPending; pending == 0 {
				return 0, true
			}
		}
		if !sleepUnless(ctx, stop, 100*time.Millisecond) {
			return 0, false
		}
	}
	return pending, true
}

// takeLeftovers fetches the n commands the previous owner left
// unacknowledged and dispatches them in stream order: they come back in
// the order their AckWait or Nak delay ran out, which need not be the
// order they were published in. Every command never delivered comes after
// them and after every one of them in the stream.
func (p *partitions) takeLeftovers(ctx context.Context, cons jetstream.Consumer, n int) error {
	if n == 0 {
		return nil
	}
	batch, err := cons.Fetch(n, jetstream.FetchMaxWait(2*fetchWait))
	if err != nil {
		return fmt.Errorf("partition leftovers: %w", err)
	}
	var msgs []jetstream.Msg
	for m := range batch.Messages() {
		msgs = append(msgs, wrapPartition(m))
	}
	slices.SortFunc(msgs, func(a, b jetstream.Msg) int { return cmp.Compare(streamSeq(a), streamSeq(b)) })
	for _, m := range msgs {
		p.d.dispatch(ctx, workspaceKey(m.Subject()), m)
	}
	return batch.Error()
}

// awaitIdle returns once no command of partition i is queued or running.
func (p *partitions) awaitIdle(i int) {
	for p.heldOf(i) > 0 {
		time.Sleep(20 * time.Millisecond)
	}
}

// sleepUnless waits d, and reports false if ctx or stop ended it first.
func sleepUnless(ctx context.Context, stop <-chan struct{}, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	case <-t.C:
		return true
	}
}

// drainLegacy finishes the commands an earlier version's shared consumer
// holds, before any partition is consumed, then deletes that consumer.
// Commands from the partitions' start on are in the partitions too: they
// are acknowledged there unhandled.
func (p *partitions) drainLegacy(ctx context.Context) {
	defer close(p.legacyDone)
	for pause := time.Duration(0); ; pause = p.w.cfg.NakDelay {
		if !sleepUnless(ctx, nil, pause) {
			return
		}
		cons, err := p.w.deps.JS.Consumer(ctx, events.CommandsStream, ConsumerName)
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			return
		}
		if err != nil {
			if ctx.Err() == nil {
				p.log.Warn("earlier consumer", zap.Error(err))
			}
			continue
		}
		p.log.Info("draining the earlier shared consumer", zap.Uint64("before_seq", p.start))
		drained, err := p.drainLegacyOnce(ctx, cons)
		if drained {
			if err := p.w.deps.JS.DeleteConsumer(ctx, events.CommandsStream, ConsumerName); err != nil &&
				!errors.Is(err, jetstream.ErrConsumerNotFound) {
				p.log.Warn("deleting the earlier consumer", zap.Error(err))
				continue
			}
			p.log.Info("earlier shared consumer drained and deleted")
			return
		}
		if err != nil {
			p.log.Warn("draining the earlier consumer", zap.Error(err))
		}
	}
}

func (p *partitions) drainLegacyOnce(ctx context.Context, cons jetstream.Consumer) (drained bool, err error) {
	it, err := cons.Messages(jetstream.PullMaxMessages(2 * (p.w.cfg.Concurrency + p.w.cfg.SideConcurrency)))
	if err != nil {
		return false, err
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				it.Stop()
				return
			case <-done:
				return
			case <-t.C:
			}
			info, err := cons.Info(ctx)
			if errors.Is(err, jetstream.ErrConsumerNotFound) ||
				(err == nil && info.NumAckPending == 0 && info.Delivered.Stream+1 >= p.start) {
				drained = true
				it.Drain()
				return
			}
		}
	}()
	err = p.w.consume(ctx, legacyIter{MessagesContext: it, start: p.start}, p.d)
	close(done)
	<-finished
	p.d.wait()
	return drained, err
}

// legacyIter hands out the earlier consumer's commands from before the
// partitions' start, and acknowledges the later ones, which the partitions
// deliver.
type legacyIter struct {
	jetstream.MessagesContext
	start uint64
}

func (it legacyIter) Next(opts ...jetstream.NextOpt) (jetstream.Msg, error) {
	for {
		m, err := it.MessagesContext.Next(opts...)
		if err != nil {
			return nil, err
		}
		if streamSeq(m) < it.start {
			return m, nil
		}
		_ = m.Ack()
	}
}

// samplePending observes the commands not yet delivered, and delivered but
// not acknowledged, over every partition's consumer.
func (p *partitions) samplePending(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(p.w.cfg.SampleEvery)
		defer t.Stop()
		for {
			p.sampleOnce(ctx)
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

func (p *partitions) sampleOnce(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, p.w.cfg.SampleEvery)
	defer cancel()
	var pending, ackPending uint64
	for i := range p.n {
		cons, err := p.w.deps.JS.Consumer(ctx, events.PartitionsStream, PartitionConsumerName(i))
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			continue
		}
		if err != nil {
			return // skipped: the next tick tries again
		}
		info := cons.CachedInfo()
		pending += info.NumPending
		ackPending += uint64(info.NumAckPending)
	}
	p.w.metrics.observeConsumer(pending, ackPending)
}

// restartReason labels a partition consumer's restart for the metrics.
func restartReason(err error) string {
	if errors.Is(err, jetstream.ErrNoHeartbeat) {
		return "heartbeat"
	}
	return "error"
}
