package projection_test

import (
	"context"
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
// consumer, throws the model away, replays and compares.
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

	if err := projection.Rebuild(ctx, b.JS); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for reader.Len() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after rebuild the reader still holds %d", reader.Len())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
	stop = project()
	defer stop()
	after := waitAll()
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("replayed model differs:\nbefore %+v\nafter  %+v", before[0], after[0])
	}
}
