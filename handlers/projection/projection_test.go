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
	"github.com/eo-workspaces/provisioner/schemas"
)

func TestApplyIsAFoldThatSkipsRedeliveries(t *testing.T) {
	var ws projection.Workspace
	steps := []events.Payload{
		&events.StatusChanged{Status: events.StatusProvisioning, Owner: "alice"},
		&events.MemberAdded{Username: "alice", Role: events.RoleAdmin},
		&events.StepFailed{Saga: "create", Step: "bucket", Error: "boom", Retryable: true},
		&events.StatusChanged{Status: events.StatusFailed, LastError: "boom", FailedStep: "bucket"},
		&events.StatusChanged{Status: events.StatusReady, Storage: &events.Storage{Bucket: "ws-a", Endpoint: "http://s3", Region: "r"}},
		&events.MemberAdded{Username: "bob", Role: events.RoleAccess},
		&events.MemberRemoved{Username: "bob"},
	}
	for i, p := range steps {
		env, _ := events.New("ws-a", p, events.Meta{Actor: "t"})
		if changed, err := projection.Apply(&ws, env, uint64(i+1)); err != nil || !changed {
			t.Fatalf("step %d: changed %v err %v", i, changed, err)
		}
	}
	old, _ := events.New("ws-a", &events.StatusChanged{Status: events.StatusDeleted}, events.Meta{Actor: "t"})
	if changed, _ := projection.Apply(&ws, old, 3); changed {
		t.Fatal("a redelivered older event changed the model")
	}
	if ws.Status != events.StatusReady || ws.LastError != "" || ws.FailedStep != "" || ws.Owner != "alice" ||
		ws.Storage == nil || len(ws.Members) != 1 || ws.RoleOf("alice") != events.RoleAdmin || ws.RoleOf("bob") != "" {
		t.Fatalf("folded model %+v", ws)
	}
}

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
	reader := projection.NewReader(zap.NewNop())
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
	waitAll := func() []projection.Workspace {
		deadline := time.Now().Add(30 * time.Second)
		for {
			items, _ := reader.List(projection.Filter{Status: events.StatusReady}, "", 1000)
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

// A membership change that fails shows as last_member_error and leaves the
// workspace's status, step and last_error alone; a later one that succeeds
// clears it.
func TestMembershipFailuresLeaveTheStatusAlone(t *testing.T) {
	ws := projection.Workspace{}
	fold := func(seq uint64, p events.Payload) {
		t.Helper()
		env, _ := events.New("ws-a", p, events.Meta{Actor: "t"})
		if _, err := projection.Apply(&ws, env, seq); err != nil {
			t.Fatal(err)
		}
	}
	fold(1, &events.StatusChanged{Status: events.StatusReady, Owner: "alice"})
	fold(2, &events.StepCompleted{Saga: "create", Step: "credentials"})
	fold(3, &events.StepCompleted{Saga: "member_add", Step: "keep_an_admin"})
	fold(4, &events.StepFailed{Saga: "member_add", Step: "grant_role", Error: `user "nobody" does not exist`})
	if ws.Status != events.StatusReady || ws.Step != "credentials" || ws.LastError != "" || ws.FailedStep != "" ||
		ws.MemberError != `user "nobody" does not exist` {
		t.Fatalf("after a failed member add: %+v", ws)
	}
	fold(5, &events.MemberAdded{Username: "bob", Role: events.RoleAccess})
	if ws.MemberError != "" || ws.RoleOf("bob") != events.RoleAccess {
		t.Fatalf("after a member add: %+v", ws)
	}
}
