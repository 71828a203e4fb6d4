package sagas_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// A membership command queued behind a create that crashed waits for it:
// the create resumes first, then the member is added.
func TestAMemberAddBehindACrashedCreateRunsAfterIt(t *testing.T) {
	h := newHarness(t)
	h.prov.AddUser(user2)
	crashAfter(h.prov, "EnsureBucket")
	if crashed, _ := handleCrashing(t, h.coordinator(fastRetries("w1")), create(t, "ws-late")); !crashed {
		t.Fatal("no crash")
	}
	h.handleAll(h.coordinator(fastRetries("w1")), add(t, "ws-late", user2, events.RoleAccess))
	if rec := h.record("ws-late"); rec.Status != events.StatusReady || !allCreateSteps(rec.StepsDone) {
		t.Fatalf("record %+v", rec)
	}
	if got := h.mappings("ws-late")[user2]; !slices.Equal(got, []string{events.RoleAccess}) {
		t.Fatalf("mappings %v", h.mappings("ws-late"))
	}
}

var memberOps = []string{"GrantClientRole", "RevokeClientRole"}

// A worker killed between a membership step's side effect and saving its
// progress: the redelivered command resumes at that step, which repeats
// as a no-op, and publishes nothing twice.
func TestCrashMidMembershipChangeResumes(t *testing.T) {
	for i, op := range memberOps {
		t.Run(op, func(t *testing.T) {
			h := newHarness(t)
			c := h.coordinator(fastRetries("w1"))
			h.ready(c, "ws-mcrash")
			h.handleAll(c, add(t, "ws-mcrash", user2, events.RoleAdmin))
			grants, revokes := h.prov.Calls("GrantClientRole"), h.prov.Calls("RevokeClientRole")
			cmd := add(t, "ws-mcrash", user2, events.RoleAccess) // a role change: grant, then revoke
			crashAfter(h.prov, op)
			if crashed, err := handleCrashing(t, c, cmd); !crashed {
				t.Fatalf("no crash (err %v)", err)
			}
			rec := h.record("ws-mcrash")
			if rec.Member == nil || rec.Member.CommandID != cmd.ID || len(rec.Member.StepsDone) != i+2 || rec.Lease == nil {
				t.Fatalf("record after the crash %+v member %+v", rec, rec.Member)
			}
			n := len(h.eventsOf("ws-mcrash"))
			h.handleAll(h.coordinator(fastRetries("w1")), cmd)
			if got := h.mappings("ws-mcrash")[user2]; !slices.Equal(got, []string{events.RoleAccess}) {
				t.Fatalf("mappings %v", got)
			}
			wantGrants, wantRevokes := grants+1, revokes+2 // the two other roles
			if i == 0 {
				wantGrants++
			} else {
				wantRevokes++
			}
			if g, r := h.prov.Calls("GrantClientRole"), h.prov.Calls("RevokeClientRole"); g != wantGrants || r != wantRevokes {
				t.Fatalf("grants %d revokes %d, want %d and %d", g, r, wantGrants, wantRevokes)
			}
			// Events of the steps after the crashed one's; the crashed step's
			// completion was never published, so it appears once.
			want := []string{"member_add:grant_role", "member_add:revoke_other_role", "member_add:member_keys", "member:" + user2 + "=ws_access"}[i:]
			if got := summary(t, h.tail("ws-mcrash", n)); !slices.Equal(got, want) {
				t.Fatalf("events after resume\n got %v\nwant %v", got, want)
			}
			if rec := h.record("ws-mcrash"); rec.Member != nil || rec.Lease != nil || !slices.Contains(rec.MembersApplied, cmd.ID) {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}

// A later command that overtakes the redelivery of a crashed one (another
// worker, another delivery order) finishes the crashed one first, and the
// crashed one's redelivery afterwards changes nothing: add, then remove.
func TestAddThenRemoveKeepsItsOrderAcrossACrash(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-order")
	addCmd := add(t, "ws-order", user2, events.RoleAccess)
	crashAfter(h.prov, "GrantClientRole")
	if crashed, _ := handleCrashing(t, c, addCmd); !crashed {
		t.Fatal("no crash")
	}
	h.handleAll(c, remove(t, "ws-order", user2), addCmd)
	if got := h.mappings("ws-order"); got[user2] != nil {
		t.Fatalf("user2 still mapped after add then remove: %v", got)
	}
	got := summary(t, h.eventsOf("ws-order"))
	if i, j := slices.Index(got, "member:"+user2+"=ws_access"), slices.Index(got, "removed:"+user2); i < 0 || j < i {
		t.Fatalf("events %v", got)
	}
}

func TestAnotherWorkerWaitsForAMembershipChangeInFlight(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-busy")
	crashAfter(h.prov, "GrantClientRole")
	if crashed, _ := handleCrashing(t, c, add(t, "ws-busy", user2, events.RoleAccess)); !crashed {
		t.Fatal("no crash")
	}
	// w1's lease still lives: a delete elsewhere must not run beside it.
	if err := h.coordinator(fastRetries("w2")).Handle(context.Background(), command(t, "ws-busy", &events.Delete{})); !errors.Is(err, sagas.ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy", err)
	}
	if h.prov.Calls("DeleteClient") != 0 {
		t.Fatal("the delete ran beside the membership change")
	}
}

// Membership changes leave the create/delete record logic intact: a
// duplicate create is still a no-op, and a delete removes the client and
// with it every role mapping.
func TestCreateAndDeleteAfterMembershipChanges(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	first := create(t, "ws-after")
	h.handleAll(c, first)
	h.prov.AddUser(user2)
	h.handleAll(c, add(t, "ws-after", user2, events.RoleAdmin), first, create(t, "ws-after"))
	if n := h.prov.Calls("EnsureClient"); n != 1 {
		t.Fatalf("a duplicate create ran again: %d EnsureClient calls", n)
	}
	h.handleAll(c, command(t, "ws-after", &events.Delete{Purge: true}))
	if s := h.prov.Workspace("ws-after"); !s.Empty() {
		t.Fatalf("left behind: %+v", s)
	}
	if rec := h.record("ws-after"); rec.Status != events.StatusDeleted {
		t.Fatalf("record %+v", rec)
	}
	// A new incarnation starts with its owner as the only admin again.
	h.handleAll(c, create(t, "ws-after"))
	if rec := h.record("ws-after"); rec.Admins != nil || rec.Status != events.StatusReady {
		t.Fatalf("record %+v", rec)
	}
	if got := h.mappings("ws-after"); len(got) != 1 || got[user2] != nil {
		t.Fatalf("mappings of the new incarnation %v", got)
	}
}
