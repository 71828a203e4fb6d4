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
	want := []string{"member_add:resolve_member", "member_add:keep_an_admin", "member_add:grant_role", "member_add:revoke_other_role", "member_add:member_keys", "member:" + user2 + "=ws_access"}
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
