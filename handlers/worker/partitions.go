package worker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// The commands are partitioned by workspace (events.PartitionsStream), one
// durable consumer per partition, and each partition is consumed by exactly
// one worker at a time, so a workspace's commands apply in publish order
// however many workers run. Who consumes what is agreed in the workers
// bucket:
//   - member.<worker>: a heartbeat, renewed every tick; a member whose
//     expiry passed is gone.
//   - partition.<p>: the owner's lease (worker, expiry), taken by
//     compare-and-set only when absent or expired, renewed while held.
//
// Every worker computes the same wanted owner of each partition from the
// sorted live members (partition p to member p mod n). A worker that holds
// a partition it should no longer have stops pulling from it, lets every
// command it holds of it finish, and only then deletes its lease; the new
// owner takes it after that, so no two workers ever run commands of one
// partition at once. A worker that dies stops renewing: its leases expire
// and the new owner first waits until the dead worker's unacknowledged
// commands are due for redelivery, which the server hands out before any
// later command of the partition.

const (
	memberKeyPrefix    = "member."
	partitionKeyPrefix = "partition."
)

// ownerLease is the value of a member or partition key.
type ownerLease struct {
	Worker  string    `json:"worker"`
	Expires time.Time `json:"expires"`
}

// ownedPart is a partition this worker holds.
type ownedPart struct {
	rev       uint64
	renewed   time.Time
	stop      chan struct{} // closed: stop pulling, hand it over
	drained   chan struct{} // closed by the feeder once nothing of it is held
	releasing bool
}

// partitions runs the assignment and one feeder per owned partition, all
// feeding one dispatcher.
type partitions struct {
	w          *Worker
	kv         jetstream.KeyValue
	n          int
	start      uint64 // first commands-stream sequence the partitions source
	d          *dispatcher
	ttl, tick  time.Duration
	owned      map[int]*ownedPart // the coordinator's alone
	wake       chan struct{}
	feeders    sync.WaitGroup
	mu         sync.Mutex
	closing    bool // set before feeders.Wait: no feeder starts after
	legacyDone chan struct{}
	log        *zap.Logger
}

func (w *Worker) newPartitions(ctx context.Context) (*partitions, error) {
	s, err := w.deps.JS.Stream(ctx, events.PartitionsStream)
	if err != nil {
		return nil, fmt.Errorf("partitions stream: %w", err)
	}
	cfg := s.CachedInfo().Config
	n, err := events.PartitionCount(cfg)
	if err != nil {
		return nil, err
	}
	kv, err := w.deps.JS.KeyValue(ctx, events.WorkersBucket)
	if err != nil {
		return nil, fmt.Errorf("workers bucket: %w", err)
	}
	return &partitions{w: w, kv: kv, n: n, start: events.PartitionStart(cfg), ttl: w.cfg.LeaseTTL,
		tick: min(w.cfg.LeaseTTL/3, time.Second), owned: map[int]*ownedPart{}, wake: make(chan struct{}, 1),
		legacyDone: make(chan struct{}), log: w.log.Named("partitions")}, nil
}

// run assigns partitions and feeds d until ctx ends; then it waits for
// every feeder and every command held, and gives its partitions up.
func (p *partitions) run(ctx context.Context, d *dispatcher) {
	p.d = d
	go p.drainLegacy(ctx)
	done := make(chan struct{})
	go func() {
		<-ctx.Done()
		p.mu.Lock()
		p.closing = true
		p.mu.Unlock()
		p.feeders.Wait()
		d.wait()
		close(done)
	}()
	t := time.NewTicker(p.tick)
	defer t.Stop()
	for {
		p.step(ctx)
		select {
		case <-done:
			p.leave()
			return
		case <-t.C:
		case <-p.wake:
		}
	}
}

func (p *partitions) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// step renews this worker's keys and moves partitions toward the wanted
// assignment.
func (p *partitions) step(ctx context.Context) {
	now := time.Now()
	stopping := ctx.Err() != nil
	if !stopping {
		p.put(memberKeyPrefix+p.w.cfg.WorkerID, now)
	}
	live := p.members(now, !stopping)
	for i := range p.n {
		want := len(live) > 0 && live[i%len(live)] == p.w.cfg.WorkerID
		o := p.owned[i]
		switch {
		case o == nil:
			if want && !stopping {
				p.take(ctx, i, now)
			}
		case o.releasing && isClosed(o.drained):
			p.release(i, o)
		default:
			if !want && !o.releasing {
				o.releasing = true
				close(o.stop)
			}
			p.renew(i, o, now)
		}
	}
}

func isClosed(c chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

func kvCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 5*time.Second)
}

func (p *partitions) lease(now time.Time) []byte {
	b, _ := json.Marshal(ownerLease{Worker: p.w.cfg.WorkerID, Expires: now.Add(p.ttl)})
	return b
}

func (p *partitions) put(key string, now time.Time) {
	ctx, cancel := kvCtx()
	defer cancel()
	if _, err := p.kv.Put(ctx, key, p.lease(now)); err != nil {
		p.log.Warn("worker heartbeat failed", zap.Error(err))
	}
}

// members lists the live workers, sorted; expired members are removed.
func (p *partitions) members(now time.Time, withSelf bool) []string {
	ctx, cancel := kvCtx()
	defer cancel()
	var live []string
	if withSelf {
		live = append(live, p.w.cfg.WorkerID)
	}
	keys, err := p.kv.ListKeysFiltered(ctx, memberKeyPrefix+">")
	if err != nil {
		p.log.Warn("listing workers failed", zap.Error(err))
		return live
	}
	for key := range keys.Keys() {
		e, err := p.kv.Get(ctx, key)
		if err != nil {
			continue
		}
		var l ownerLease
		if json.Unmarshal(e.Value(), &l) != nil || !l.Expires.After(now) {
			_ = p.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
			continue
		}
		if !slices.Contains(live, l.Worker) && (withSelf || l.Worker != p.w.cfg.WorkerID) {
			live = append(live, l.Worker)
		}
	}
	slices.Sort(live)
	return live
}

func partitionKey(i int) string { return partitionKeyPrefix + strconv.Itoa(i) }

// take leases partition i if nobody else holds it, and starts its feeder.
func (p *partitions) take(ctx context.Context, i int, now time.Time) {
	kctx, cancel := kvCtx()
	defer cancel()
	key := partitionKey(i)
	var rev uint64
	e, err := p.kv.Get(kctx, key)
	switch {
	case events.IsNotFound(err):
		rev, err = p.kv.Create(kctx, key, p.lease(now))
	case err != nil:
	default:
		var l ownerLease
		if json.Unmarshal(e.Value(), &l) == nil && l.Worker != p.w.cfg.WorkerID && l.Expires.After(now) {
			return // still held; its owner hands it over
		}
		rev, err = p.kv.Update(kctx, key, p.lease(now), e.Revision())
	}
	if err != nil {
		if !events.IsConflict(err) {
			p.log.Warn("taking a partition failed", zap.Int("partition", i), zap.Error(err))
		}
		return
	}
	o := &ownedPart{rev: rev, renewed: now, stop: make(chan struct{}), drained: make(chan struct{})}
	p.owned[i] = o
	p.log.Info("partition taken", zap.Int("partition", i))
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		o.releasing = true
		close(o.stop)
		close(o.drained)
		return
	}
	p.feeders.Add(1)
	go p.feed(ctx, i, o)
}

// renew extends the lease on partition i; a lease lost (taken over after
// it expired) stops the feeder at once.
func (p *partitions) renew(i int, o *ownedPart, now time.Time) {
	if now.Sub(o.renewed) < p.ttl/3 {
		return
	}
	ctx, cancel := kvCtx()
	defer cancel()
	rev, err := p.kv.Update(ctx, partitionKey(i), p.lease(now), o.rev)
	if err == nil {
		o.rev, o.renewed = rev, now
		return
	}
	p.log.Warn("renewing a partition failed", zap.Int("partition", i), zap.Error(err))
	if events.IsConflict(err) || now.Sub(o.renewed) >= p.ttl {
		if !o.releasing {
			o.releasing = true
			close(o.stop)
		}
		delete(p.owned, i) // another may own it now: never delete its lease
	}
}

// release deletes the lease of a partition whose commands are all settled.
func (p *partitions) release(i int, o *ownedPart) {
	ctx, cancel := kvCtx()
	defer cancel()
	err := p.kv.Delete(ctx, partitionKey(i), jetstream.LastRevision(o.rev))
	if err != nil && !events.IsConflict(err) {
		p.log.Warn("releasing a partition failed, trying again", zap.Int("partition", i), zap.Error(err))
		return
	}
	delete(p.owned, i)
	p.log.Info("partition released", zap.Int("partition", i))
}

// leave gives up every partition still held and the membership, so the
// others take over without waiting for expiry.
func (p *partitions) leave() {
	for i, o := range p.owned {
		p.release(i, o)
	}
	ctx, cancel := kvCtx()
	defer cancel()
	if err := p.kv.Delete(ctx, memberKeyPrefix+p.w.cfg.WorkerID); err != nil {
		p.log.Warn("leaving the workers failed", zap.Error(err))
	}
}

// heldOf counts the commands of partition i queued or running here.
func (p *partitions) heldOf(i int) int {
	n := 0
	for _, m := range p.d.snapshot() {
		if partitionOf(m) == i {
			n++
		}
	}
	return n
}

// validWorkerID reports whether id can name a KV key.
func validWorkerID(id string) bool {
	return id != "" && !strings.ContainsAny(id, " \t\r\n*>") && !strings.HasPrefix(id, ".") && !strings.HasSuffix(id, ".")
}
