package sagas_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// forceDelete runs a forced delete and checks that the workspace ended
// deleted with nothing of ours left: no client, bucket, policy, MinIO
// user or stored key pair.
func (h *harness) forceDelete(ws string, workerID string) {
	h.t.Helper()
	c := h.coordinator(fastRetries(workerID))
	if err := c.Handle(context.Background(), command(h.t, ws, &events.Delete{Force: true})); err != nil {
		h.t.Fatalf("force delete: %v", err)
	}
	if rec := h.record(ws); rec.Status != events.StatusDeleted || !rec.Params.Force || !rec.Params.Purge {
		h.t.Fatalf("record after the force delete: %+v", rec)
	}
	s := h.prov.Workspace(ws)
	if s.Client && !s.ForeignAny || s.Bucket && !s.ForeignAny || s.Policy == ws || s.ReadOnlyPolicy == ws || len(s.Users) > 0 {
		h.t.Fatalf("something of ours is left: %+v", s)
	}
	if keys, err := h.vault.Members(context.Background(), ws); err != nil || len(keys) > 0 {
		h.t.Fatalf("stored key pairs left: %d (%v)", len(keys), err)
	}
}

// A create that failed half-way (someone else's policy holds the name),
// its bucket of ours holding an object: a force delete removes the client,
// the bucket with its object and everything else of ours, and leaves the
// foreign policy and an unrelated foreign bucket as they were.
func TestForceDeleteOfAHalfMadeFailedWorkspace(t *testing.T) {
	h := newHarness(t)
	ws := "ws-half-made"
	h.prov.AddForeign("policy", ws)
	h.prov.AddForeign("bucket", "ws-bystander")
	if err := h.prov.PutObject("ws-bystander"); err != nil {
		t.Fatal(err)
	}
	c := h.coordinator(fastRetries("w1"))
	if err := c.Handle(context.Background(), create(t, ws)); err == nil {
		t.Fatal("the create did not fail on the foreign policy")
	}
	if rec := h.record(ws); rec.Status != events.StatusFailed || rec.FailedStep != "policy" {
		t.Fatalf("record: %s at %s, want failed at policy", rec.Status, rec.FailedStep)
	}
	if err := h.prov.PutObject(ws); err != nil { // the half-made bucket is ours
		t.Fatal(err)
	}
	h.forceDelete(ws, "w1")
	if s := h.prov.Workspace(ws); s.Bucket || s.Client || s.Policy != "someone-elses-bucket" {
		t.Fatalf("after the force delete: %+v, want only the foreign policy, unchanged", s)
	}
	if s := h.prov.Workspace("ws-bystander"); !s.Bucket || s.Objects != 1 || !s.ForeignAny {
		t.Fatalf("the bystander bucket was touched: %+v", s)
	}
}

// A create cut short mid-way (its worker killed) is not finished first:
// the force delete abandons it, so no later create step runs, and removes
// what it had made.
func TestForceDeleteAbandonsAStuckCreate(t *testing.T) {
	h := newHarness(t)
	ws := "ws-stuck"
	crashAfter(h.prov, "EnsureBucket")
	if crashed, err := handleCrashing(t, h.coordinator(fastRetries("w1")), create(t, ws)); !crashed {
		t.Fatalf("no crash (err %v)", err)
	}
	h.prov.SetAfter(nil)
	if rec := h.record(ws); rec.Status != events.StatusProvisioning {
		t.Fatalf("record after the kill: %s, want provisioning", rec.Status)
	}
	h.forceDelete(ws, "w1") // the same worker, restarted: its own lease
	if got := h.prov.Calls("EnsureBucketPolicy"); got != 0 {
		t.Errorf("the abandoned create went on: EnsureBucketPolicy called %d times", got)
	}
	if s := h.prov.Workspace(ws); !s.Empty() {
		t.Fatalf("left after the force delete: %+v", s)
	}
}

// Another live worker's lease still holds a force delete off: it waits,
// it does not run beside that worker.
func TestForceDeleteWaitsForAnotherWorkersLease(t *testing.T) {
	h := newHarness(t)
	ws := "ws-leased"
	crashAfter(h.prov, "EnsureBucket")
	if crashed, err := handleCrashing(t, h.coordinator(fastRetries("w1")), create(t, ws)); !crashed {
		t.Fatalf("no crash (err %v)", err)
	}
	h.prov.SetAfter(nil)
	err := h.coordinator(fastRetries("w2")).Handle(context.Background(), command(t, ws, &events.Delete{Force: true}))
	if !errors.Is(err, sagas.ErrBusy) || h.record(ws).Status != events.StatusProvisioning {
		t.Fatalf("force delete beside a live lease: err %v, status %s", err, h.record(ws).Status)
	}
}

// A ready workspace holding objects: gone with them.
func TestForceDeleteOfAReadyWorkspace(t *testing.T) {
	h := newHarness(t)
	ws := "ws-ready-full"
	if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), create(t, ws)); err != nil {
		t.Fatal(err)
	}
	if err := h.prov.PutObject(ws); err != nil {
		t.Fatal(err)
	}
	h.forceDelete(ws, "w1")
	if s := h.prov.Workspace(ws); !s.Empty() {
		t.Fatalf("left after the force delete: %+v", s)
	}
}
