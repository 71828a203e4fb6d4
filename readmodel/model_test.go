package readmodel_test

import (
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

func TestApplyIsAFoldThatSkipsRedeliveries(t *testing.T) {
	var ws readmodel.Workspace
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
		if changed, err := readmodel.Apply(&ws, env, uint64(i+1)); err != nil || !changed {
			t.Fatalf("step %d: changed %v err %v", i, changed, err)
		}
	}
	old, _ := events.New("ws-a", &events.StatusChanged{Status: events.StatusDeleted}, events.Meta{Actor: "t"})
	if changed, _ := readmodel.Apply(&ws, old, 3); changed {
		t.Fatal("a redelivered older event changed the model")
	}
	if ws.Status != events.StatusReady || ws.LastError != "" || ws.FailedStep != "" || ws.Owner != "alice" ||
		ws.Storage == nil || len(ws.Members) != 1 || ws.RoleOf("alice") != events.RoleAdmin || ws.RoleOf("bob") != "" {
		t.Fatalf("folded model %+v", ws)
	}
}

// A membership change that fails shows as last_member_error and leaves the
// workspace's status, step and last_error alone; a later one that succeeds
// clears it.
func TestMembershipFailuresLeaveTheStatusAlone(t *testing.T) {
	ws := readmodel.Workspace{}
	fold := func(seq uint64, p events.Payload) {
		t.Helper()
		env, _ := events.New("ws-a", p, events.Meta{Actor: "t"})
		if _, err := readmodel.Apply(&ws, env, seq); err != nil {
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

// Share link events, a member's keys issued and a name's release move the
// workspace neither in updated_at nor in correlation: they may come at
// any time, a link's expiry too.
func TestShareEventsLeaveTheWorkspaceAlone(t *testing.T) {
	var ws readmodel.Workspace
	ready, _ := events.New("ws-a", &events.StatusChanged{Status: events.StatusReady}, events.Meta{Actor: "t"})
	if _, err := readmodel.Apply(&ws, ready, 1); err != nil {
		t.Fatal(err)
	}
	before := ws
	for i, p := range []events.Payload{
		&events.ShareExpired{ID: "0123456789abcdef", Path: "p"},
		&events.CredentialsIssued{Username: "u", Reason: "joined"}, // by the issuer, outside the sagas
		&events.NameReleased{Reason: events.NameReleasedExpired},
	} {
		env, _ := events.New("ws-a", p, events.Meta{Actor: "t"})
		seq := uint64(i + 2)
		if changed, err := readmodel.Apply(&ws, env, seq); err != nil || !changed {
			t.Fatalf("%s: changed %v err %v", env.Type, changed, err)
		}
		if ws.LastSeq != seq || !ws.UpdatedAt.Equal(before.UpdatedAt) || ws.CorrelationID != before.CorrelationID {
			t.Fatalf("after %s: %+v, before %+v", env.Type, ws, before)
		}
	}
}
