package sagas_test

import (
	"context"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
)

// A member whose pair the Issuer is making is removed meanwhile (the
// removal marks the pair after the Issuer read it, before MinIO answered
// it): the Issuer deletes the user it just made and announces nothing,
// so no key of a removed member is left working.
func TestTheIssuerUndoesAPairRemovedWhileItWorked(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-race")
	if err := c.Handle(ctx, add(t, "ws-race", user2, events.RoleAccess)); err != nil {
		t.Fatal(err)
	}
	pending, ok, err := h.vault.GetMember(ctx, "ws-race", user2)
	if err != nil || !ok || !pending.Pending {
		t.Fatalf("the new member's pair %v ok %v err %v, want it pending", pending, ok, err)
	}
	n := len(h.eventsOf("ws-race"))
	h.prov.SetBefore(func(op, _ string) error {
		if op == "EnsureUser" { // the removal's first write lands now
			h.prov.SetBefore(nil)
			cur, _, _ := h.vault.GetMember(ctx, "ws-race", user2)
			cur.Removing = true
			if err := h.vault.PutMember(ctx, "ws-race", user2, cur); err != nil {
				t.Error(err)
			}
		}
		return nil
	})
	h.issue()
	if _, made := h.prov.Workspace("ws-race").Users[pending.AccessKey]; made {
		t.Fatal("the removed member's MinIO user is left working")
	}
	if got := summary(t, h.tail("ws-race", n)); len(got) != 0 {
		t.Fatalf("events %v, want none", got)
	}
	// the removal then completes as usual
	h.handleAll(c, remove(t, "ws-race", user2))
	if _, ok, _ := h.vault.GetMember(ctx, "ws-race", user2); ok {
		t.Fatal("the removed member's pair is still stored")
	}
	pend, err := h.vault.PendingMembers(ctx)
	if err != nil || len(pend) != 0 {
		t.Fatalf("pending index %v %v, want empty", pend, err)
	}
}
