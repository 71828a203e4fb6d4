package names_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas/names"
)

func TestReserveClaimUnreserveRelease(t *testing.T) {
	ctx := context.Background()
	kv, err := bustest.Start(t).JS.KeyValue(ctx, events.NamesBucket)
	if err != nil {
		t.Fatal(err)
	}
	n := names.NewKV(kv)
	first := names.Reservation{CommandID: "c1", Owner: "alice", CreatedAt: time.Now().UTC()}
	rev, err := n.Reserve(ctx, "ws-a", first)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Reserve(ctx, "ws-a", names.Reservation{CommandID: "c2"}); !errors.Is(err, names.ErrTaken) {
		t.Fatalf("second reserve: %v, want ErrTaken", err)
	}
	got, gotRev, err := n.Get(ctx, "ws-a")
	if err != nil || gotRev != rev || got.CommandID != "c1" || got.Owner != "alice" {
		t.Fatalf("get: %+v rev %d (want %d) %v", got, gotRev, rev, err)
	}
	next, err := n.Claim(ctx, "ws-a", names.Reservation{CommandID: "c3"}, rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Claim(ctx, "ws-a", names.Reservation{CommandID: "c4"}, rev); !errors.Is(err, names.ErrTaken) {
		t.Fatalf("claim at a stale revision: %v, want ErrTaken", err)
	}
	if err := n.Unreserve(ctx, "ws-a", rev); err == nil {
		t.Fatal("unreserve at a stale revision succeeded")
	}
	if err := n.Unreserve(ctx, "ws-a", next); err != nil {
		t.Fatal(err)
	}
	if _, rev, err := n.Get(ctx, "ws-a"); rev != 0 || err != nil {
		t.Fatalf("after unreserve: rev %d, %v", rev, err)
	}
	for range 2 { // free already is success
		if err := n.Release(ctx, "ws-a"); err != nil {
			t.Fatal(err)
		}
	}
}
