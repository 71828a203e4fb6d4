package projection_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/projection"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/schemas"
)

// TestRebuildReplaysToTheSameModel projects events with the real
// consumer, spoils the stored model, rebuilds it while a reader watches,
// and compares; then the projection resumes where the rebuild stopped.
func TestRebuildReplaysToTheSameModel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := bustest.Start(t)
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(b.JS, v)
	const n = 50
	for i := range n {
		ws := fmt.Sprintf("ws-r%d", i)
		for _, p := range []events.Payload{
			&events.StatusChanged{Status: events.StatusProvisioning, Owner: "alice"},
			&events.MemberAdded{Username: "alice", Role: events.RoleAdmin},
			&events.StatusChanged{Status: events.StatusReady},
		} {
			env, _ := events.New(ws, p, events.Meta{Actor: "t"})
			if _, err := pub.Publish(ctx, env); err != nil {
				t.Fatal(err)
			}
		}
	}
	reader := readmodel.NewReader(zap.NewNop())
	go func() { _ = reader.Run(ctx, b.JS) }()
	<-reader.Ready()

	project := func() context.CancelFunc {
		pctx, stop := context.WithCancel(ctx)
		p, err := projection.NewProjector(pctx, b.JS, v, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = p.Run(pctx); close(done) }()
		return func() { stop(); <-done }
	}
	waitAll := func() []readmodel.Workspace {
		deadline := time.Now().Add(30 * time.Second)
		for {
			items, _ := reader.List(readmodel.Filter{Status: events.StatusReady}, "", 1000)
			if len(items) == n {
				return items
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d of %d workspaces ready", len(items), n)
			}
			time.Sleep(10 * time.Millisecond) // polling interval
		}
	}
	stop := project()
	before := waitAll()
	stop()

	// Spoil the stored model three ways: a wrong entry, a missing one and
	// one no event made. The rebuild mends all three.
	kv, err := b.JS.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		t.Fatal(err)
	}
	spoilt := before[1]
	spoilt.Status, spoilt.Members = events.StatusFailed, nil
	for name, ws := range map[string]readmodel.Workspace{spoilt.Name: spoilt, "ws-stray": {Name: "ws-stray", Status: events.StatusReady}} {
		raw, _ := json.Marshal(ws)
		if _, err := kv.Put(ctx, name, raw); err != nil {
			t.Fatal(err)
		}
	}
	if err := kv.Delete(ctx, before[2].Name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the spoilt model in the reader", func() bool {
		ws, ok := reader.Get(spoilt.Name)
		_, stray := reader.Get("ws-stray")
		_, deleted := reader.Get(before[2].Name)
		return ok && ws.Status == events.StatusFailed && stray && !deleted
	})

	// Readers keep answering through the rebuild: no workspace the model
	// had goes missing from them, not even for a moment.
	changes, unsubscribe := reader.Subscribe(10 * n)
	stats, err := projection.Rebuild(ctx, b.JS, v, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	if stats.Events != 3*n || stats.Workspaces != n || stats.Written != 2 || stats.Removed != 1 || stats.Rejected != 0 {
		t.Fatalf("rebuild stats %+v, want %d events, %d workspaces, 2 written, 1 removed", stats, 3*n, n)
	}
	waitFor(t, "the stray entry gone from the reader", func() bool { _, ok := reader.Get("ws-stray"); return !ok })
	unsubscribe()
	for ws := range changes {
		if ws.Status == "" && ws.Name != "ws-stray" {
			t.Fatalf("%s went missing from the reader during the rebuild", ws.Name)
		}
	}
	if after := waitAll(); !reflect.DeepEqual(before, after) {
		t.Fatalf("rebuilt model differs:\nbefore %+v\nafter  %+v", before, after)
	}

	// The projection resumes after the last event folded: that is its
	// checkpoint, and an event published now is applied once it runs.
	if cp, err := projection.Checkpoint(ctx, b.JS); err != nil || cp != stats.LastSeq {
		t.Fatalf("checkpoint after the rebuild %d (err %v), want %d", cp, err, stats.LastSeq)
	}
	env, _ := events.New(before[0].Name, &events.StatusChanged{Status: events.StatusDeleting}, events.Meta{Actor: "t"})
	if _, err := pub.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	stop = project()
	defer stop()
	waitFor(t, "the event after the rebuild applied", func() bool {
		ws, _ := reader.Get(before[0].Name)
		return ws.Status == events.StatusDeleting && ws.LastSeq == stats.LastSeq+1
	})
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 10s", what)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}

// TestRebuildRefusesWhenAnotherWriterMoves: an entry written between the
// rebuild's read and its writes (a projection left running) is neither
// overwritten nor lost; the rebuild says why it stopped.
func TestRebuildRefusesWhenAnotherWriterMoves(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := bustest.Start(t)
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(b.JS, v)
	env, _ := events.New("ws-moved", &events.StatusChanged{Status: events.StatusProvisioning, Owner: "alice"}, events.Meta{Actor: "t"})
	if _, err := pub.Publish(ctx, env); err != nil {
		t.Fatal(err)
	}
	kv, err := b.JS.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		t.Fatal(err)
	}
	live, _ := json.Marshal(readmodel.Workspace{Name: "ws-moved", Status: events.StatusReady, LastSeq: 99})
	projection.BeforeRebuildWrites(t, func() {
		if _, err := kv.Put(ctx, "ws-moved", live); err != nil {
			t.Error(err)
		}
	})
	_, err = projection.Rebuild(ctx, b.JS, v, zap.NewNop())
	if !errors.Is(err, projection.ErrModelMoved) {
		t.Fatalf("rebuild with another writer: %v, want ErrModelMoved", err)
	}
	e, err := kv.Get(ctx, "ws-moved")
	if err != nil || string(e.Value()) != string(live) {
		t.Fatalf("the other writer's entry became %q (err %v)", e.Value(), err)
	}
}

// A rebuild holds the projection's lease: it refuses to start while a
// projection folds, and a projection started during it takes over once
// it is done and folds what came after the rebuild's last event.
func TestRebuildAndProjectionsTakeTurns(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := bustest.Start(t)
	first := publishScripts(t, ctx, b.JS, []string{"ws-turns-1"}, 0)
	running := startProjectorOn(t, b.JS, 2*time.Second)
	waitUntil(t, "the projection folding", func() bool { return running.leading(t) })
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := projection.Rebuild(ctx, b.JS, v, zap.NewNop()); !errors.Is(err, projection.ErrProjectionRunning) {
		t.Fatalf("rebuild beside a projection: %v, want ErrProjectionRunning", err)
	}
	checkModel(t, ctx, b.JS, first)
	running.stop()
	<-running.done

	var standby *runningProjector
	projection.BeforeRebuildWrites(t, func() { standby = startProjectorOn(t, b.JS, 2*time.Second) })
	stats, err := projection.Rebuild(ctx, b.JS, v, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the standby folding after the rebuild", func() bool { return standby.leading(t) })
	if cp, err := projection.Checkpoint(ctx, b.JS); err != nil || cp < stats.LastSeq {
		t.Fatalf("checkpoint %d (err %v) after a rebuild up to %d", cp, err, stats.LastSeq)
	}
	checkModel(t, ctx, b.JS, publishScripts(t, ctx, b.JS, []string{"ws-turns-2"}, 0))
}
