package sagas_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

func rotate(t *testing.T, ws string, r events.CredentialsRotate) events.Envelope {
	return command(t, ws, &r)
}

func (h *harness) retirer() *sagas.Retirer {
	h.t.Helper()
	r, err := sagas.NewRetirer(sagas.Ports{Store: h.prov, Vault: h.vault, Events: h.pub, Log: h.log}, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return r
}

func TestRotationWithoutGraceReplacesTheKeysAtOnce(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-rot")
	h.handleAll(c, add(t, "ws-rot", user2, events.RoleViewer))
	oldKey, _, _ := h.keysOf("ws-rot", user2)
	ownerKey, _, _ := h.keysOf("ws-rot", owner)
	n := len(h.eventsOf("ws-rot"))
	h.handleAll(c, rotate(t, "ws-rot", events.CredentialsRotate{Username: user2}))
	newKey, policy, ok := h.keysOf("ws-rot", user2)
	if !ok || newKey == oldKey || policy != sagas.ReadOnlyPolicy("ws-rot") {
		t.Fatalf("after rotation: key %s (old %s) policy %q ok %v", newKey, oldKey, policy, ok)
	}
	if _, left := h.prov.Workspace("ws-rot").Users[oldKey]; left {
		t.Fatal("the old key pair still works")
	}
	if k, _, _ := h.keysOf("ws-rot", owner); k != ownerKey {
		t.Fatal("the owner's keys changed too")
	}
	want := []string{"credentials_rotate:rotate_keys", "issued:" + user2, "credentials_rotate:retire_keys", "revoked:" + user2}
	if got := summary(t, h.tail("ws-rot", n)); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

func TestRotationOfEveryoneKeepsTheOldKeysForTheGrace(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-grace")
	h.handleAll(c, add(t, "ws-grace", user2, events.RoleAccess))
	old := map[string]string{}
	for _, u := range []string{owner, user2} {
		old[u], _, _ = h.keysOf("ws-grace", u)
	}
	h.handleAll(c, rotate(t, "ws-grace", events.CredentialsRotate{All: true, GraceSeconds: 60}))
	users := h.prov.Workspace("ws-grace").Users
	for u, k := range old {
		if newKey, _, ok := h.keysOf("ws-grace", u); !ok || newKey == k {
			t.Fatalf("%s not rotated", u)
		}
		if _, ok := users[k]; !ok {
			t.Fatalf("%s's old key stopped working before its grace", u)
		}
	}
	r := h.retirer()
	if err := r.Sweep(ctx, time.Now().Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, ok := h.prov.Workspace("ws-grace").Users[old[owner]]; !ok {
		t.Fatal("an old key was retired halfway through its grace")
	}
	n := len(h.eventsOf("ws-grace"))
	if err := r.Sweep(ctx, time.Now().Add(61*time.Second)); err != nil {
		t.Fatal(err)
	}
	users = h.prov.Workspace("ws-grace").Users
	for u, k := range old {
		if _, ok := users[k]; ok {
			t.Fatalf("%s's old key works after its grace", u)
		}
	}
	got := summary(t, h.tail("ws-grace", n))
	slices.Sort(got)
	if !slices.Equal(got, []string{"revoked:" + owner, "revoked:" + user2}) {
		t.Fatalf("retirement events %v", got)
	}
	// a second sweep finds nothing left
	if left, err := h.vault.Retirements(ctx); err != nil || len(left) != 0 {
		t.Fatalf("retirements left %v %v", left, err)
	}
}

// A crash after the new key's user is made: the repeat reuses the stored
// new pair, so no second user is made and the old one is retired once.
func TestRotationResumesAfterACrashWithoutAStrayKey(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-rc")
	oldKey, _, _ := h.keysOf("ws-rc", owner)
	cmd := rotate(t, "ws-rc", events.CredentialsRotate{Username: owner})
	crashAfter(h.prov, "EnsureUser")
	if crashed, err := handleCrashing(t, c, cmd); !crashed {
		t.Fatalf("no crash (err %v)", err)
	}
	h.handleAll(h.coordinator(fastRetries("w1")), cmd)
	users := h.prov.Workspace("ws-rc").Users
	newKey, _, ok := h.keysOf("ws-rc", owner)
	if _, stillOld := users[oldKey]; !ok || newKey == oldKey || stillOld || len(users) != 1 {
		t.Fatalf("users after resume %v (new %s old %s)", users, newKey, oldKey)
	}
}

func TestRemovingAMemberEndsTheirKeysInGraceToo(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-rg")
	h.handleAll(c, add(t, "ws-rg", user2, events.RoleAccess))
	oldKey, _, _ := h.keysOf("ws-rg", user2)
	h.handleAll(c, rotate(t, "ws-rg", events.CredentialsRotate{Username: user2, GraceSeconds: 3600}), remove(t, "ws-rg", user2))
	for k, u := range h.prov.Workspace("ws-rg").Users {
		if u.Policy == "ws-rg" && k == oldKey {
			t.Fatal("the removed member's old key still works in its grace")
		}
	}
	if got := len(h.prov.Workspace("ws-rg").Users); got != 1 {
		t.Fatalf("%d users left, want the owner's only", got)
	}
}
