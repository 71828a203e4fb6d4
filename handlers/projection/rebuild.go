package projection

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// beforeWrites runs between reading the stored model and writing it;
// tests make another writer act there.
var beforeWrites = func() {}

// RebuildStats says what a rebuild did.
type RebuildStats struct {
	Events     int    // events read from the stream
	Rejected   int    // of them, ones that broke their schema and were skipped
	Workspaces int    // workspaces in the rebuilt model
	Written    int    // entries written because they differed
	Removed    int    // entries removed: no event makes them any more
	LastSeq    uint64 // the last event folded; the projection resumes after it
	Took       time.Duration
}

// EventsPerSecond is the rebuild's rate over the whole run.
func (s RebuildStats) EventsPerSecond() float64 { return float64(s.Events) / s.Took.Seconds() }

// ErrModelMoved means another writer changed the read model while a
// rebuild ran: the projection role was not stopped.
var ErrModelMoved = errors.New("the read model changed during the rebuild: stop the projection role and run it again")

// ErrProjectionRunning means a projection process holds the lease: it
// folds events into the model a rebuild would replace.
var ErrProjectionRunning = errors.New("a projection process is folding events: stop every projection role and run it again")

// Rebuild replays the whole events stream into the read model, in place
// of the one stored. It holds the projection's lease while it runs, so it
// refuses to start while a projection process folds
// (ErrProjectionRunning), and one started meanwhile stands by; afterwards
// the projection resumes after the last event folded here.
//
// Readers keep answering all along: the events are folded in memory
// (readmodel.Apply, as the projector does) and only then compared with
// the stored model, each entry replaced by its rebuilt value in one write
// (compare-and-set on its revision), so a read sees a workspace as it was
// or as rebuilt, never missing. Entries no event makes any more are
// removed last. Folding in memory, with the schema checks spread over
// the cores, is what makes it fast: one KV write per workspace that
// differs instead of a read and a write per event.
func Rebuild(ctx context.Context, js jetstream.JetStream, schema events.SchemaValidator, log *zap.Logger) (RebuildStats, error) {
	begin := time.Now()
	kv, err := js.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		return RebuildStats{}, fmt.Errorf("projection bucket: %w", err)
	}
	l, checkpoint, err := holdLease(ctx, js)
	if err != nil {
		return RebuildStats{}, err
	}
	rctx, stop := l.keepRenewed(ctx, func() uint64 { return checkpoint }, log)
	stats, err := rebuild(rctx, js, kv, schema, log)
	_ = stop() // a loss has ended rctx: the rebuild's writes say so
	if err == nil {
		checkpoint = stats.LastSeq
		err = dropLegacyConsumer(ctx, js)
	}
	// Given up with the old checkpoint after a failure: an entry rebuilt
	// already holds a later event than it, so folding from it is right.
	rerr := l.release(ctx, checkpoint)
	stats.Took = time.Since(begin)
	return stats, errors.Join(err, rerr)
}

// holdLease takes the projection's lease for a rebuild, so no projection
// folds meanwhile, and returns it with the checkpoint it held.
func holdLease(ctx context.Context, js jetstream.JetStream) (*lease, uint64, error) {
	workers, err := js.KeyValue(ctx, events.WorkersBucket)
	if err != nil {
		return nil, 0, fmt.Errorf("workers bucket: %w", err)
	}
	l := newLease(workers, DefaultLeaseTTL)
	l.holder = "rebuild-" + l.holder
	first := func(ctx context.Context) (uint64, error) { return legacyCheckpoint(ctx, js) }
	checkpoint, ok, err := l.acquire(ctx, time.Now(), first)
	if err != nil {
		return nil, 0, err
	}
	if !ok {
		return nil, 0, ErrProjectionRunning
	}
	return l, checkpoint, nil
}

func rebuild(ctx context.Context, js jetstream.JetStream, kv jetstream.KeyValue, schema events.SchemaValidator, log *zap.Logger) (RebuildStats, error) {
	model, stats, err := foldStream(ctx, js, schema, log)
	if err != nil {
		return stats, err
	}
	stored, err := storedModel(ctx, kv)
	if err != nil {
		return stats, err
	}
	beforeWrites()
	if stats.Written, err = writeChanged(ctx, kv, model, stored); err != nil {
		return stats, err
	}
	if stats.Removed, err = removeGone(ctx, kv, model, stored); err != nil {
		return stats, err
	}
	stats.Workspaces = len(model)
	return stats, nil
}

// foldStream reads every event up to the stream's last one at the start
// and folds each workspace's into its model.
func foldStream(ctx context.Context, js jetstream.JetStream, schema events.SchemaValidator, log *zap.Logger) (map[string]*readmodel.Workspace, RebuildStats, error) {
	var stats RebuildStats
	model := map[string]*readmodel.Workspace{}
	stream, err := js.Stream(ctx, events.EventsStream)
	if err != nil {
		return nil, stats, fmt.Errorf("events stream: %w", err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		return nil, stats, fmt.Errorf("events stream info: %w", err)
	}
	stats.LastSeq = info.State.LastSeq
	if info.State.Msgs == 0 {
		return model, stats, nil
	}
	parsed := make(chan batch, 4)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return readParsed(gctx, stream, info.State.LastSeq, schema, parsed) })
	g.Go(func() error {
		for b := range parsed {
			for _, ev := range <-b {
				stats.Events++
				if ev.err != nil {
					// As the projector does: an event that breaks its schema
					// can never be applied; the stream keeps it.
					stats.Rejected++
					log.Error("rebuild: event rejected", zap.Uint64("seq", ev.seq), zap.Error(ev.err))
					continue
				}
				ws := model[ev.env.Subject]
				if ws == nil {
					ws = &readmodel.Workspace{}
				}
				changed, err := readmodel.Apply(ws, ev.env, ev.seq)
				if err != nil {
					return fmt.Errorf("apply %s seq %d: %w", ev.env.Type, ev.seq, err)
				}
				if changed {
					model[ev.env.Subject] = ws
				}
			}
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, stats, err
	}
	return model, stats, nil
}

type parsedEvent struct {
	seq uint64
	env events.Envelope
	err error
}

// batch is one run of events, parsed by a worker; receiving from it
// waits for that worker, so batches are folded in stream order.
type batch <-chan []parsedEvent

// batchSize is how many events one parse worker takes at a time: enough
// to make handing them over cheap, few enough to keep every core busy.
const batchSize = 256

// readParsed reads the stream from its start to last with an ordered
// consumer and sends batches to out in order, each parsed (schema check
// and decoding, the costly part) on a goroutine of its own, at most
// GOMAXPROCS at once.
func readParsed(ctx context.Context, stream jetstream.Stream, last uint64, schema events.SchemaValidator, out chan<- batch) error {
	defer close(out)
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		return fmt.Errorf("replay consumer: %w", err)
	}
	it, err := cons.Messages(jetstream.PullMaxMessages(4 * batchSize))
	if err != nil {
		return fmt.Errorf("replay messages: %w", err)
	}
	defer it.Stop()
	slots := make(chan struct{}, runtime.GOMAXPROCS(0))
	type raw struct {
		seq  uint64
		data []byte
	}
	flush := func(msgs []raw) error {
		res := make(chan []parsedEvent, 1)
		select {
		case out <- res:
		case <-ctx.Done():
			return ctx.Err()
		}
		slots <- struct{}{}
		go func() {
			defer func() { <-slots }()
			evs := make([]parsedEvent, len(msgs))
			for i, m := range msgs {
				evs[i].seq = m.seq
				evs[i].env, evs[i].err = events.Parse(m.data, schema)
			}
			res <- evs
		}()
		return nil
	}
	pending := make([]raw, 0, batchSize)
	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("replay next: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("replay metadata: %w", err)
		}
		seq := meta.Sequence.Stream
		if seq > last { // published after the rebuild began: the consumer's
			return flush(pending)
		}
		pending = append(pending, raw{seq: seq, data: msg.Data()})
		if seq == last || meta.NumPending == 0 {
			return flush(pending)
		}
		if len(pending) == batchSize {
			if err := flush(pending); err != nil {
				return err
			}
			pending = make([]raw, 0, batchSize)
		}
	}
}

type storedEntry struct {
	rev   uint64
	value []byte
}

// storedModel reads every entry of the bucket as it is now.
func storedModel(ctx context.Context, kv jetstream.KeyValue) (map[string]storedEntry, error) {
	w, err := kv.WatchAll(ctx, jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("read the stored model: %w", err)
	}
	defer func() { _ = w.Stop() }()
	stored := map[string]storedEntry{}
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case e, ok := <-w.Updates():
			if !ok {
				return nil, errors.New("read the stored model: the watch ended early")
			}
			if e == nil {
				return stored, nil
			}
			stored[e.Key()] = storedEntry{rev: e.Revision(), value: e.Value()}
		}
	}
}

// writeParallel is how many KV writes a rebuild keeps in flight: each is
// a round trip, and they are independent.
const writeParallel = 32

// writeChanged writes each rebuilt workspace that differs from its stored
// entry, with compare-and-set on the revision read.
func writeChanged(ctx context.Context, kv jetstream.KeyValue, model map[string]*readmodel.Workspace, stored map[string]storedEntry) (int, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(writeParallel)
	written := 0
	for name, ws := range model {
		raw, err := json.Marshal(ws)
		if err != nil {
			return written, fmt.Errorf("marshal workspace %s: %w", name, err)
		}
		old, exists := stored[name]
		if exists && bytes.Equal(old.value, raw) {
			continue
		}
		written++
		g.Go(func() error {
			var err error
			if exists {
				_, err = kv.Update(gctx, name, raw, old.rev)
			} else {
				_, err = kv.Create(gctx, name, raw)
			}
			if events.IsConflict(err) {
				return fmt.Errorf("workspace %s: %w", name, ErrModelMoved)
			}
			if err != nil {
				return fmt.Errorf("store workspace %s: %w", name, err)
			}
			return nil
		})
	}
	return written, g.Wait()
}

// removeGone removes the stored entries of workspaces no event makes.
func removeGone(ctx context.Context, kv jetstream.KeyValue, model map[string]*readmodel.Workspace, stored map[string]storedEntry) (int, error) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(writeParallel)
	removed := 0
	for name, old := range stored {
		if _, ok := model[name]; ok {
			continue
		}
		removed++
		g.Go(func() error {
			err := kv.Purge(gctx, name, jetstream.LastRevision(old.rev))
			if events.IsConflict(err) {
				return fmt.Errorf("workspace %s: %w", name, ErrModelMoved)
			}
			if err != nil {
				return fmt.Errorf("remove workspace %s: %w", name, err)
			}
			return nil
		})
	}
	return removed, g.Wait()
}
