package sagas_test

import (
	"context"
	"errors"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// keysOf returns the MinIO user of username's stored key pair in ws, and
// whether both exist.
func (h *harness) keysOf(ws, username string) (access, policy string, ok bool) {
	h.t.Helper()
	cred, stored, err := h.vault.GetMember(context.Background(), ws, username)
	if err != nil {
		h.t.Fatal(err)
	}
	u, exists := h.prov.Workspace(ws).Users[cred.AccessKey]
	return cred.AccessKey, u.Policy, stored && exists && u.Secret == cred.SecretKey && !cred.Pending
}

func TestEveryMemberHoldsKeysOfTheirOwnThatFollowTheirRole(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-k")
	h.handleAll(c, add(t, "ws-k", user2, events.RoleViewer))
	ownerKey, ownerPolicy, ok := h.keysOf("ws-k", owner)
	if !ok || ownerPolicy != "ws-k" {
		t.Fatalf("owner keys %s policy %q ok %v", ownerKey, ownerPolicy, ok)
	}
	viewerKey, viewerPolicy, ok := h.keysOf("ws-k", user2)
	if !ok || viewerPolicy != sagas.ReadOnlyPolicy("ws-k") || viewerKey == ownerKey || len(viewerKey) != 20 {
		t.Fatalf("viewer keys %s policy %q ok %v (owner's %s)", viewerKey, viewerPolicy, ok, ownerKey)
	}
	// a role change re-binds the same key pair to the other policy
	h.handleAll(c, add(t, "ws-k", user2, events.RoleAccess))
	if key, policy, ok := h.keysOf("ws-k", user2); !ok || key != viewerKey || policy != "ws-k" {
		t.Fatalf("after the role change: key %s policy %q ok %v", key, policy, ok)
	}
	if got := h.mappings("ws-k")[user2]; len(got) != 1 || got[0] != events.RoleAccess {
		t.Fatalf("mappings %v", got)
	}
	// removal deletes the member's user before member.removed goes out
	h.handleAll(c, remove(t, "ws-k", user2))
	if _, exists := h.prov.Workspace("ws-k").Users[viewerKey]; exists {
		t.Fatal("the removed member's MinIO user is still there")
	}
	if _, stored, _ := h.vault.GetMember(context.Background(), "ws-k", user2); stored {
		t.Fatal("the removed member's key pair is still stored")
	}
	if _, _, ok := h.keysOf("ws-k", owner); !ok {
		t.Fatal("the owner's keys went with the removed member's")
	}
	// back again: a key nobody held before
	h.handleAll(c, add(t, "ws-k", user2, events.RoleAccess))
	if key, _, ok := h.keysOf("ws-k", user2); !ok || key == viewerKey {
		t.Fatalf("re-added member's key %s (old %s) ok %v", key, viewerKey, ok)
	}
}

func TestAClientApplicationIsAddedThroughItsServiceAccount(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-app")
	h.prov.AddUser("service-account-notebook")
	n := len(h.eventsOf("ws-app"))
	h.handleAll(c, command(t, "ws-app", &events.MemberAdd{ClientID: "notebook", Role: events.RoleAccess}))
	if got := h.mappings("ws-app")["service-account-notebook"]; len(got) != 1 || got[0] != events.RoleAccess {
		t.Fatalf("mappings %v", h.mappings("ws-app"))
	}
	if _, _, ok := h.keysOf("ws-app", "service-account-notebook"); !ok {
		t.Fatal("the application holds no keys")
	}
	envs := h.tail("ws-app", n)
	last, err := envs[len(envs)-2].DecodeData() // the Issuer's credentials.issued follows
	if err != nil {
		t.Fatal(err)
	}
	if a, ok := last.(*events.MemberAdded); !ok || a.Username != "service-account-notebook" || a.Kind != events.KindClient || a.ClientID != "notebook" {
		t.Fatalf("last event %+v", last)
	}
	// an unknown application fails the change with the reason
	err = c.Handle(context.Background(), command(t, "ws-app", &events.MemberAdd{ClientID: "nope", Role: events.RoleAccess}))
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Step != "resolve_member" || failed.Retryable {
		t.Fatalf("unknown client: %v", err)
	}
}

func TestDeleteRemovesEveryMembersKeys(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-gone")
	h.handleAll(c, add(t, "ws-gone", user2, events.RoleViewer), command(t, "ws-gone", &events.Delete{Purge: true}))
	if s := h.prov.Workspace("ws-gone"); !s.Empty() {
		t.Fatalf("left behind: %+v", s)
	}
	if m, err := h.vault.Members(context.Background(), "ws-gone"); err != nil || len(m) != 0 {
		t.Fatalf("stored key pairs left: %d %v", len(m), err)
	}
}
