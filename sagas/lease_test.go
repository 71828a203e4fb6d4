package sagas_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

func TestLeaseOfAnotherLiveWorkerMakesTheCommandWait(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cmd := create(t, "ws-leased")
	crashAfter(h.prov, "EnsureBucket")
	if crashed, _ := handleCrashing(t, h.coordinator(fastRetries("w1")), cmd); !crashed {
		t.Fatal("no crash")
	}
	other := h.coordinator(fastRetries("w2"))
	if err := other.Handle(ctx, cmd); !errors.Is(err, sagas.ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy while w1's lease lives", err)
	}
	lease := h.record("ws-leased").Lease
	if lease == nil || lease.WorkerID != "w1" {
		t.Fatalf("lease %+v", lease)
	}
	// Poll until w1's lease expires and w2 takes the saga over.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := other.Handle(ctx, cmd)
		if err == nil {
			break
		}
		if !errors.Is(err, sagas.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("after the lease's expiry (%s): %v", lease.Until, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Now().Before(lease.Until) {
		t.Fatal("took the saga over before the lease expired")
	}
	h.assertProvisioned("ws-leased")
}

func TestStopEndsAtAStepBoundaryAndReleasesTheLease(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	h.prov.SetAfter(func(op, _ string) error {
		if op == "EnsureBucket" {
			cancel() // the stop arrives while the bucket step runs
		}
		return nil
	})
	cmd := create(t, "ws-stop")
	if err := h.coordinator(fastRetries("w1")).Handle(ctx, cmd); !errors.Is(err, sagas.ErrStopped) {
		t.Fatalf("err = %v, want ErrStopped", err)
	}
	rec := h.record("ws-stop")
	// The bucket step in flight finished; the MinIO lane started nothing
	// after it (the Keycloak lane stops at its own next step boundary).
	if !slices.Contains(rec.StepsDone, "bucket") || slices.Contains(rec.StepsDone, "policy") ||
		rec.Lease != nil || rec.Status != events.StatusProvisioning {
		t.Fatalf("record after stop %+v", rec)
	}
	h.prov.SetAfter(nil)
	if err := h.coordinator(fastRetries("w2")).Handle(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	h.assertProvisioned("ws-stop")
	if n := h.prov.Calls("EnsureBucket"); n != 1 {
		t.Fatalf("the finished bucket step ran %d times", n)
	}
}
