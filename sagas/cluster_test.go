package sagas_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// On a replicated bucket (--nats-replicas 3), a worker whose lease
// another worker took while a step ran must notice at its next write of
// the record, or at its next lease renewal, and stop without running
// another step or touching the record; the worker that holds the lease
// finishes the run, and only the step that was in flight runs twice
// (idempotently). (The server reports such a write with error code 10071
// when the other write has landed, 10164 when both are in flight:
// sagas/progress's race test covers that one.)
func TestALostLeaseIsNoticedOnAReplicatedBucket(t *testing.T) {
	h := newHarnessOn(t, bustest.StartCluster(t))
	cases := []struct {
		ws      string
		renewal bool // wait for a renewal to see the loss before the step ends
	}{{"ws-r3-write", false}, {"ws-r3-renewal", true}}
	for _, tc := range cases {
		t.Run(tc.ws, func(t *testing.T) {
			cfg := fastRetries("w1")
			cfg.LeaseTTL = 300 * time.Millisecond
			w1 := h.coordinator(cfg)
			h.ready(w1, tc.ws)
			grants, revokes := h.prov.Calls("GrantClientRole"), h.prov.Calls("RevokeClientRole")
			cmd := add(t, tc.ws, user2, events.RoleAccess)
			stolen := false
			h.prov.SetAfter(func(op, _ string) error {
				if op == "GrantClientRole" && !stolen {
					stolen = true
					h.takeLease(tc.ws, "w2")
					if tc.renewal {
						h.awaitLog(t, "saga: lease renewal failed", tc.ws)
					}
				}
				return nil
			})
			err := w1.Handle(context.Background(), cmd)
			h.prov.SetAfter(nil)
			if !errors.Is(err, sagas.ErrBusy) {
				t.Fatalf("w1 after losing its lease: %v, want ErrBusy", err)
			}
			rec := h.record(tc.ws)
			if rec.Lease == nil || rec.Lease.WorkerID != "w2" || slices.Contains(rec.Member.StepsDone, "grant_role") ||
				h.prov.Calls("RevokeClientRole") != revokes {
				t.Fatalf("w1 went on after losing its lease: lease %+v, member %+v, revokes %d",
					rec.Lease, rec.Member, h.prov.Calls("RevokeClientRole")-revokes)
			}

			if err := h.coordinator(fastRetries("w2")).Handle(context.Background(), cmd); err != nil {
				t.Fatalf("w2 resuming: %v", err)
			}
			rec = h.record(tc.ws)
			if rec.Member != nil || rec.Lease != nil || !slices.Contains(rec.MembersApplied, cmd.ID) {
				t.Fatalf("w2 did not finish the run: %+v", rec)
			}
			if g, r := h.prov.Calls("GrantClientRole")-grants, h.prov.Calls("RevokeClientRole")-revokes; g != 2 || r != 2 {
				t.Fatalf("grant ran %d times (want 2: once in flight on each worker), revoke %d (want 2: the two other roles, once)", g, r)
			}
		})
	}
}

// takeLease does what another worker does once a lease has expired: it
// writes its own lease over the record with compare-and-set.
func (h *harness) takeLease(ws, workerID string) {
	h.t.Helper()
	ctx := context.Background()
	rec, rev, err := h.progress.Load(ctx, ws)
	if err != nil {
		h.t.Fatal(err)
	}
	rec.Lease = &sagas.Lease{WorkerID: workerID, Until: time.Now().Add(time.Hour)}
	if _, err := h.progress.Save(ctx, ws, rec, rev); err != nil {
		h.t.Fatal(err)
	}
}

// awaitLog waits until a log entry with that message names ws.
func (h *harness) awaitLog(t *testing.T, msg, ws string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range h.logs.FilterMessage(msg).All() {
			if e.ContextMap()["workspace"] == ws {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no %q logged for %s", msg, ws)
}
