package readmodel_test

import (
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

func TestDegradedShowsItsReasonUntilReadyAgain(t *testing.T) {
	var ws readmodel.Workspace
	fold := func(seq uint64, p events.Payload) {
		t.Helper()
		env, err := events.New("ws-a", p, events.Meta{Actor: "t"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readmodel.Apply(&ws, env, seq); err != nil {
			t.Fatal(err)
		}
	}
	storage := &events.Storage{Bucket: "ws-a", Endpoint: "http://s3", Region: "r"}
	fold(1, &events.StatusChanged{Status: events.StatusReady, Owner: "alice", Storage: storage})
	fold(2, &events.StepCompleted{Saga: "reconcile", Step: "reconcile_storage"})
	fold(3, &events.Degraded{Reason: "bucket ws-a is someone else's", Kind: events.DriftBucket})
	if ws.Status != events.StatusDegraded || ws.LastError != "bucket ws-a is someone else's" || ws.Step != "" {
		t.Fatalf("degraded: %+v", ws)
	}
	fold(4, &events.StatusChanged{Status: events.StatusReady, Previous: events.StatusDegraded, Owner: "alice"})
	if ws.Status != events.StatusReady || ws.LastError != "" || ws.Storage == nil || ws.Owner != "alice" {
		t.Fatalf("ready again: %+v", ws)
	}
}
