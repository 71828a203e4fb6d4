package readmodel_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// TestSubscribersSeeEveryWriteAndSlowOnesAreDropped: the live views of
// the operator page are fed from the KV watch.
func TestSubscribersSeeEveryWriteAndSlowOnesAreDropped(t *testing.T) {
	b := bustest.Start(t)
	ctx, cancel := context.WithCancel(t.Context())
	r := readmodel.NewReader(zap.NewNop())
	done := make(chan struct{})
	go func() { _ = r.Run(ctx, b.JS); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	<-r.Ready()
	kv, err := b.JS.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		t.Fatal(err)
	}
	live, stop := r.Subscribe(8)
	defer stop()
	slow, _ := r.Subscribe(1)
	for _, st := range []string{events.StatusProvisioning, events.StatusReady} {
		raw, _ := json.Marshal(readmodel.Workspace{Name: "ws-live", Status: st})
		if _, err := kv.Put(ctx, "ws-live", raw); err != nil {
			t.Fatal(err)
		}
		select {
		case ws := <-live:
			if ws.Name != "ws-live" || ws.Status != st {
				t.Fatalf("got %+v, want ws-live %s", ws, st)
			}
		case <-time.After(time.Second):
			t.Fatalf("no change within 1s for status %s", st)
		}
	}
	// A third change, once live has it, proves the second one's hand-out
	// finished (changes are applied one at a time): live can be served
	// before slow within one hand-out.
	raw, _ := json.Marshal(readmodel.Workspace{Name: "ws-sync"})
	if _, err := kv.Put(ctx, "ws-sync", raw); err != nil {
		t.Fatal(err)
	}
	if ws := <-live; ws.Name != "ws-sync" {
		t.Fatalf("got %+v, want ws-sync", ws)
	}
	// The slow subscriber read nothing: one change filled it, the next dropped it.
	<-slow
	if _, open := <-slow; open {
		t.Fatal("a subscriber two changes behind on a buffer of one was kept")
	}
	if err := kv.Delete(ctx, "ws-live"); err != nil {
		t.Fatal(err)
	}
	if ws := <-live; ws.Name != "ws-live" || ws.Status != "" {
		t.Fatalf("a removal reads %+v, want the name alone", ws)
	}
}
