package sagas_test

import (
	"context"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// oldLayout turns a ready workspace into what versions before per-member
// keys left: one key pair named after the workspace for everyone, no
// member keys, no read-only policy, a record without a layout.
func (h *harness) oldLayout(ws string, members ...string) sagas.Credential {
	h.t.Helper()
	ctx := context.Background()
	for _, m := range append([]string{owner}, members...) {
		if cred, ok, _ := h.vault.GetMember(ctx, ws, m); ok {
			if err := h.prov.DeleteUser(ctx, cred.AccessKey); err != nil {
				h.t.Fatal(err)
			}
			if err := h.vault.DeleteMember(ctx, ws, m); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	if err := h.prov.DeleteReadOnlyPolicy(ctx, sagas.ReadOnlyPolicy(ws), ws); err != nil {
		h.t.Fatal(err)
	}
	shared := sagas.Credential{AccessKey: ws, SecretKey: "shared-secret-of-" + ws}
	if err := h.vault.Put(ctx, ws, shared); err != nil {
		h.t.Fatal(err)
	}
	if err := h.prov.EnsureUser(ctx, ws, shared.SecretKey, ws); err != nil {
		h.t.Fatal(err)
	}
	rec, rev, err := h.progress.Load(ctx, ws)
	if err != nil {
		h.t.Fatal(err)
	}
	rec.Layout = sagas.LayoutShared
	if _, err := h.progress.Save(ctx, ws, rec, rev); err != nil {
		h.t.Fatal(err)
	}
	return shared
}

func TestMigrationGivesEveryMemberKeysThenRetiresTheSharedPair(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-old")
	h.handleAll(c, add(t, "ws-old", user2, events.RoleAccess))
	h.ready(c, "ws-new")
	shared := h.oldLayout("ws-old", user2)

	// The worker's start-up asks for exactly the old workspace.
	n, err := sagas.MigrateAll(ctx, h.progress, h.progress, h.pub, h.log)
	if err != nil || n != 1 {
		t.Fatalf("MigrateAll = %d, %v; want the one old workspace", n, err)
	}
	cmd := command(t, "ws-old", &events.CredentialsMigrate{})
	h.handleAll(c, cmd, cmd) // a repeat changes nothing
	for _, u := range []string{owner, user2} {
		if _, policy, ok := h.keysOf("ws-old", u); !ok || policy != "ws-old" {
			t.Fatalf("%s after the migration: policy %q ok %v", u, policy, ok)
		}
	}
	s := h.prov.Workspace("ws-old")
	if s.User != nil || s.ReadOnlyPolicy != "ws-old" || len(s.Users) != 2 {
		t.Fatalf("after the migration: shared user %v, read-only policy %q, users %v", s.User, s.ReadOnlyPolicy, s.Users)
	}
	if _, ok, _ := h.vault.Get(ctx, "ws-old"); ok {
		t.Fatalf("the shared pair %s is still stored", shared.AccessKey)
	}
	if rec := h.record("ws-old"); rec.Layout != sagas.LayoutPerMember || rec.Member != nil {
		t.Fatalf("record %+v", rec)
	}
	if n, err := sagas.MigrateAll(ctx, h.progress, h.progress, h.pub, h.log); err != nil || n != 0 {
		t.Fatalf("MigrateAll after the migration = %d, %v; want none", n, err)
	}
	// The delete of a migrated workspace leaves nothing.
	h.handleAll(c, command(t, "ws-old", &events.Delete{Purge: true}))
	if s := h.prov.Workspace("ws-old"); !s.Empty() {
		t.Fatalf("left behind: %+v", s)
	}
}

// An old workspace deleted before it was migrated loses its shared pair too.
func TestDeleteOfAnUnmigratedWorkspaceRemovesTheSharedPair(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-legacy")
	h.oldLayout("ws-legacy")
	h.handleAll(c, command(t, "ws-legacy", &events.Delete{Purge: true}))
	if s := h.prov.Workspace("ws-legacy"); !s.Empty() {
		t.Fatalf("left behind: %+v", s)
	}
}
