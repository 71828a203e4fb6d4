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

const user2 = "example-user-2"

func add(t *testing.T, ws, user, role string) events.Envelope {
	return command(t, ws, &events.MemberAdd{Username: user, Role: role})
}

func remove(t *testing.T, ws, user string) events.Envelope {
	return command(t, ws, &events.MemberRemove{Username: user})
}

// ready creates ws with the coordinator and adds user2 to the realm.
func (h *harness) ready(c *sagas.CommandHandler, ws string) {
	h.t.Helper()
	if err := c.Handle(context.Background(), create(h.t, ws)); err != nil {
		h.t.Fatal(err)
	}
	h.prov.AddUser(user2)
}

func (h *harness) handleAll(c *sagas.CommandHandler, cmds ...events.Envelope) {
	h.t.Helper()
	for _, cmd := range cmds {
		if err := c.Handle(context.Background(), cmd); err != nil {
			h.t.Fatalf("%s: %v", cmd.Type, err)
		}
		h.issue() // as the worker's Issuer does within a second
	}
}

// issue runs one sweep of the Issuer of new members' key pairs.
func (h *harness) issue() {
	h.t.Helper()
	is, err := sagas.NewIssuer(sagas.Ports{Store: h.prov, Vault: h.vault, Events: h.pub, Log: h.log}, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := is.Sweep(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) mappings(ws string) map[string][]string {
	h.t.Helper()
	out := map[string][]string{}
	for u, r := range h.prov.Workspace(ws).Mappings {
		if len(r) > 0 {
			out[u] = r
		}
	}
	return out
}

// tail returns the events published for ws after the first n.
func (h *harness) tail(ws string, n int) []events.Envelope { return h.eventsOf(ws)[n:] }

func TestMemberAddThenRemove(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-m")
	before := h.record("ws-m")
	n := len(h.eventsOf("ws-m"))
	addCmd := add(t, "ws-m", user2, events.RoleAccess)
	h.handleAll(c, addCmd)
	if got := h.mappings("ws-m"); !slices.Equal(got[user2], []string{events.RoleAccess}) || len(got) != 2 {
		t.Fatalf("mappings %v", got)
	}
	envs := h.tail("ws-m", n)
	want := []string{"member_add:resolve_member", "member_add:keep_an_admin", "member_add:grant_role", "member_add:revoke_other_role", "member_add:member_keys", "member:" + user2 + "=ws_access",
		"issued:" + user2} // by the Issuer, once MinIO holds the new pair
	if got := summary(t, envs); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
	for _, e := range envs {
		if e.CorrelationID != addCmd.CorrelationID || e.CausationID != addCmd.ID || e.Actor != addCmd.Actor {
			t.Fatalf("event %s: correlation %s causation %s actor %s", e.Type, e.CorrelationID, e.CausationID, e.Actor)
		}
	}
	// The workspace's own saga is untouched: no status event, same record.
	rec := h.record("ws-m")
	if rec.Member != nil || rec.Lease != nil || rec.Saga != sagas.SagaCreate || rec.Status != events.StatusReady ||
		rec.CreatedBy != before.CreatedBy || rec.CommandID != before.CommandID || !slices.Contains(rec.MembersApplied, addCmd.ID) {
		t.Fatalf("record %+v", rec)
	}
	n = len(h.eventsOf("ws-m"))
	h.handleAll(c, remove(t, "ws-m", user2))
	if got := h.mappings("ws-m"); len(got) != 1 || got[user2] != nil {
		t.Fatalf("mappings after remove %v", got)
	}
	want = []string{"member_remove:keep_an_admin", "member_remove:revoke_roles", "member_remove:revoke_keys", "removed:" + user2}
	if got := summary(t, h.tail("ws-m", n)); !slices.Equal(got, want) {
		t.Fatalf("events\n got %v\nwant %v", got, want)
	}
}

// Adding a member who holds the role, or removing one who holds none,
// succeeds, changes nothing in Keycloak and still reports the outcome.
func TestMembershipChangesAreIdempotent(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-idem")
	first := add(t, "ws-idem", user2, events.RoleAccess)
	h.handleAll(c, first, first, add(t, "ws-idem", user2, events.RoleAccess))
	if n := h.prov.Creates("mapping"); n != 2 { // the owner's and user2's
		t.Fatalf("mappings created %d times", n)
	}
	if n := h.prov.Calls("GrantClientRole"); n != 3 { // owner, then two commands; the redelivery did nothing
		t.Fatalf("GrantClientRole called %d times", n)
	}
	var added int
	for _, s := range summary(t, h.eventsOf("ws-idem")) {
		if s == "member:"+user2+"=ws_access" {
			added++
		}
	}
	if added != 2 {
		t.Fatalf("member.added published %d times, want once per command", added)
	}
	n := len(h.eventsOf("ws-idem"))
	h.handleAll(c, remove(t, "ws-idem", "example-user-3"), remove(t, "ws-idem", "not-in-the-realm"))
	if got := h.mappings("ws-idem"); len(got) != 2 {
		t.Fatalf("removing non-members changed mappings: %v", got)
	}
	if got := summary(t, h.tail("ws-idem", n)); !slices.Contains(got, "removed:not-in-the-realm") || slices.ContainsFunc(got, func(s string) bool {
		return strings.HasPrefix(s, "failed:")
	}) {
		t.Fatalf("events %v", got)
	}
}

func TestRoleChangeRevokesTheOtherRole(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-role")
	h.handleAll(c, add(t, "ws-role", user2, events.RoleAccess), add(t, "ws-role", user2, events.RoleAdmin))
	if got := h.mappings("ws-role")[user2]; !slices.Equal(got, []string{events.RoleAdmin}) {
		t.Fatalf("after promotion %v", got)
	}
	// With user2 a ws_admin, the owner may step down to ws_access.
	h.handleAll(c, add(t, "ws-role", owner, events.RoleAccess))
	if got := h.mappings("ws-role")[owner]; !slices.Equal(got, []string{events.RoleAccess}) {
		t.Fatalf("owner after demotion %v", got)
	}
	if got := h.record("ws-role").Admins; !slices.Equal(got, []string{user2}) {
		t.Fatalf("admins %v", got)
	}
}

func TestTheLastAdminCannotBeRemovedNorDemoted(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-last")
	for _, cmd := range []events.Envelope{remove(t, "ws-last", owner), add(t, "ws-last", owner, events.RoleAccess)} {
		err := c.Handle(context.Background(), cmd)
		var failed *sagas.FailedError
		if !errors.As(err, &failed) || failed.Step != "keep_an_admin" || failed.Retryable ||
			!strings.Contains(err.Error(), "only ws_admin") {
			t.Fatalf("%s: err = %v, want a permanent failure at keep_an_admin", cmd.Type, err)
		}
	}
	if got := h.mappings("ws-last")[owner]; !slices.Equal(got, []string{events.RoleAdmin}) {
		t.Fatalf("owner mappings %v", got)
	}
	if n := h.prov.Calls("RevokeClientRole"); n != 0 {
		t.Fatalf("a provider was called: %d revokes", n)
	}
	if rec := h.record("ws-last"); rec.Status != events.StatusReady || rec.Member != nil || rec.Lease != nil {
		t.Fatalf("record %+v", rec)
	}
	// Once another admin exists, the owner may go.
	h.handleAll(c, add(t, "ws-last", user2, events.RoleAdmin), remove(t, "ws-last", owner))
	if got := h.mappings("ws-last"); got[owner] != nil || !slices.Equal(got[user2], []string{events.RoleAdmin}) {
		t.Fatalf("mappings %v", got)
	}
}

func TestUnknownUserIsAPermanentFailureThatLeavesTheWorkspaceReady(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-nobody")
	n := len(h.eventsOf("ws-nobody"))
	cmd := add(t, "ws-nobody", "nobody", events.RoleAccess)
	err := c.Handle(context.Background(), cmd)
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Step != "grant_role" || failed.Retryable || !errors.Is(err, sagas.ErrUnknownUser) {
		t.Fatalf("err = %v, want a permanent unknown-user failure at grant_role", err)
	}
	if calls := h.prov.Calls("GrantClientRole"); calls != 2 { // the owner's, then one attempt
		t.Fatalf("an unknown user was retried: %d grants", calls)
	}
	envs := h.tail("ws-nobody", n)
	last, _ := envs[len(envs)-1].DecodeData()
	sf, ok := last.(*events.StepFailed)
	if !ok || sf.Saga != sagas.SagaMemberAdd || sf.Retryable || !strings.Contains(sf.Error, `"nobody" does not exist`) ||
		envs[len(envs)-1].CausationID != cmd.ID {
		t.Fatalf("last event %+v", last)
	}
	for _, s := range summary(t, envs) {
		if strings.HasPrefix(s, "status:") {
			t.Fatalf("a membership failure changed the status: %v", summary(t, envs))
		}
	}
	if rec := h.record("ws-nobody"); rec.Status != events.StatusReady || rec.LastError != "" || rec.Member != nil {
		t.Fatalf("record %+v", rec)
	}
	// Redelivered, the command is over: no second attempt.
	h.handleAll(c, cmd)
	if calls := h.prov.Calls("GrantClientRole"); calls != 2 {
		t.Fatalf("a redelivered failed command ran again: %d grants", calls)
	}
}

func TestMembershipChangesOfAWorkspaceNotReadyAreRejected(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	ctx := context.Background()
	// failed: its owner does not exist.
	if err := c.Handle(ctx, command(t, "ws-failed", &events.Create{PreferredName: "failed", DefaultOwner: "nobody"})); err == nil {
		t.Fatal("want a failed create")
	}
	// deleted.
	h.handleAll(c, create(t, "ws-gone"), command(t, "ws-gone", &events.Delete{}))
	h.prov.AddUser(user2)
	for name, cmd := range map[string]events.Envelope{
		"unknown":        add(t, "ws-unknown", user2, events.RoleAccess),
		"failed add":     add(t, "ws-failed", user2, events.RoleAccess),
		"failed remove":  remove(t, "ws-failed", user2),
		"deleted add":    add(t, "ws-gone", user2, events.RoleAdmin),
		"deleted remove": remove(t, "ws-gone", owner),
	} {
		var rej *sagas.RejectedError
		if err := c.Handle(ctx, cmd); !errors.As(err, &rej) || rej.Reason == "" {
			t.Errorf("%s: err = %v, want a rejection", name, err)
		} else if !strings.Contains(rej.Reason, "does not exist") && !strings.Contains(rej.Reason, "only while it is ready") {
			t.Errorf("%s: reason %q", name, rej.Reason)
		}
	}
	if n := h.prov.Calls("RevokeClientRole"); n != 0 {
		t.Fatalf("a rejected command reached Keycloak (%d revokes)", n)
	}
}
