package sagas_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

var deleteOps = []string{"DeleteUser", "DeleteReadOnlyPolicy", "DeletePolicy", "DeleteBucket", "DeleteClient"}

func TestCrashAtEveryDeleteStepResumes(t *testing.T) {
	for i, op := range deleteOps {
		t.Run(op, func(t *testing.T) {
			h := newHarness(t)
			c := h.coordinator(fastRetries("w1"))
			if err := c.Handle(context.Background(), create(t, "ws-del")); err != nil {
				t.Fatal(err)
			}
			del := command(t, "ws-del", &events.Delete{Purge: true})
			crashAfter(h.prov, op)
			if crashed, err := handleCrashing(t, c, del); !crashed {
				t.Fatalf("no crash (err %v)", err)
			}
			if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), del); err != nil {
				t.Fatal(err)
			}
			if s := h.prov.Workspace("ws-del"); !s.Empty() {
				t.Fatalf("left behind: %+v", s)
			}
			for j, o := range deleteOps {
				want := 1
				if j == i {
					want = 2
				}
				if got := h.prov.Calls(o); got != want {
					t.Errorf("%s called %d times, want %d", o, got, want)
				}
			}
			if rec := h.record("ws-del"); rec.Status != events.StatusDeleted {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}

func TestDeleteWithoutPurgeKeepsANonEmptyWorkspaceIntact(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	ctx := context.Background()
	if _, err := h.namesKV.Create(ctx, "ws-data", []byte("reserved")); err != nil {
		t.Fatal(err)
	}
	if err := c.Handle(ctx, create(t, "ws-data")); err != nil {
		t.Fatal(err)
	}
	if err := h.prov.PutObject("ws-data"); err != nil {
		t.Fatal(err)
	}
	err := c.Handle(ctx, command(t, "ws-data", &events.Delete{}))
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Step != "bucket_empty_check" || failed.Retryable {
		t.Fatalf("err = %v", err)
	}
	rec := h.record("ws-data")
	if rec.Status != events.StatusFailed || !strings.Contains(rec.LastError, "purge=true") {
		t.Fatalf("record %+v", rec)
	}
	h.assertProvisioned("ws-data") // nothing removed, credentials intact
	if h.prov.Workspace("ws-data").Objects != 1 {
		t.Fatal("objects lost")
	}
	if err := c.Handle(ctx, command(t, "ws-data", &events.Delete{Purge: true})); err != nil {
		t.Fatal(err)
	}
	if s := h.prov.Workspace("ws-data"); !s.Empty() {
		t.Fatalf("left behind: %+v", s)
	}
	if m, err := h.vault.Members(ctx, "ws-data"); err != nil || len(m) != 0 {
		t.Fatalf("stored credentials left behind: %d (%v)", len(m), err)
	}
	if _, err := h.namesKV.Get(ctx, "ws-data"); !events.IsNotFound(err) {
		t.Fatalf("name reservation not released: %v", err)
	}
	got := summary(t, h.eventsOf("ws-data"))
	wantTail := []string{"status:deleting", "delete:bucket_empty_check", "delete:credentials", "delete:policy_readonly",
		"delete:policy", "delete:bucket", "delete:keycloak_client", "delete:shares", "delete:release_name", "status:deleted"}
	if !slices.Equal(got[len(got)-len(wantTail):], wantTail) {
		t.Fatalf("events %v", got)
	}
	// The name can be used again.
	if err := c.Handle(ctx, create(t, "ws-data")); err != nil {
		t.Fatal(err)
	}
	if rec := h.record("ws-data"); rec.Status != events.StatusReady {
		t.Fatalf("re-created: %+v", rec)
	}
}

func TestAStaleCreateDoesNotBringADeletedWorkspaceBack(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	ctx := context.Background()
	first := create(t, "ws-gone")
	for _, cmd := range []events.Envelope{first, command(t, "ws-gone", &events.Delete{}), first} {
		if err := c.Handle(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	if rec := h.record("ws-gone"); rec.Status != events.StatusDeleted || !h.prov.Workspace("ws-gone").Empty() {
		t.Fatalf("a redelivered create re-created the workspace: %+v", rec)
	}
	if err := c.Handle(ctx, create(t, "ws-gone")); err != nil || h.record("ws-gone").Status != events.StatusReady {
		t.Fatalf("a new create after the delete: %v", err)
	}
}
