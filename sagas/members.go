package sagas

import (
	"context"
	"errors"
	"slices"

	"github.com/eo-workspaces/provisioner/events"
)

// Membership changes (workspace.member.add, workspace.member.remove).
//
//   - They apply to a ready workspace only; any other state rejects the
//     command (dead letter with the reason).
//   - Every run makes Keycloak hold the requested state, whatever it held
//     before, and then publishes the resulting fact (member.added or
//     member.removed) even when nothing had to change: adding a member
//     who holds that role already, or removing one who holds none, calls
//     the idempotent grant/revoke, changes nothing and still reports the
//     outcome, so every command has one in the audit trail and a
//     projection that drifted is repaired. The projection's fold of a
//     repeated fact changes nothing.
//   - A workspace always keeps a ws_admin: removing or demoting the last
//     ws_admin this system granted fails (step keep_an_admin) with a
//     reason; EOEPCA has no such rule, but a workspace nobody may manage
//     is only recoverable by a platform admin.
//   - A failure (unknown user, last admin, an outage outlasting the retry
//     budget) is recorded as workspace.step.failed with the membership
//     saga's name, which the projection shows as last_member_error; the
//     workspace's own status stays as it was, and the command is done:
//     it is acknowledged, not redelivered. Send it again to try again.

// MemberAdd grants a user one workspace role and takes the others away,
// granting first so a role change never leaves the user without access;
// then the member is announced. It needs Keycloak only, so a MinIO
// outage does not hold memberships up:
//   - a new member's key pair is stored pending and made in MinIO by the
//     Issuer once MinIO answers (credentials.issued follows; the API
//     shows no credentials until then, so the ones shown always work);
//   - a role change of a member whose pair is issued is applied to MinIO
//     before the announcement, and waits for it: a demotion to ws_viewer
//     must make the keys read-only within the second member.added is
//     published (README, "Storage access").
func (p *Provisioner) MemberAdd() Saga {
	return Saga{Name: SagaMemberAdd, Side: true, Settle: settleAdmins, Steps: []Step{
		{Name: "resolve_member", Do: p.resolveMember},
		{Name: "keep_an_admin", Do: keepAnAdmin},
		{Name: "grant_role", Do: p.grantRole},
		{Name: "revoke_other_role", Do: p.revokeOtherRoles},
		{Name: "member_keys", Do: p.memberKeys, Event: memberAdded},
	}}
}

// MemberRemove takes every workspace role away from a user, then deletes
// their key pair; member.removed is published only once it is gone, so it
// waits for MinIO: the contract promises that MinIO refuses the keys
// within a second of the event. While it waits it keeps its workspace's
// later commands behind it (their order matters: a remove then an add of
// the same user), but gives its side slot back between retries (see
// sagas.WithSlot), so removals waiting on MinIO do not stall adds to
// other workspaces.
func (p *Provisioner) MemberRemove() Saga {
	return Saga{Name: SagaMemberRemove, Side: true, Settle: settleAdmins, Steps: []Step{
		{Name: "keep_an_admin", Do: keepAnAdmin},
		{Name: "revoke_roles", Do: p.revokeRoles},
		{Name: "revoke_keys", Do: p.revokeKeys, Event: memberRemoved},
	}}
}

func (p *Provisioner) resolveMember(ctx context.Context, st *State) error {
	_, err := p.memberName(ctx, st)
	return err
}

// keepAnAdmin refuses a change that would leave no ws_admin: removing
// the only one, or giving them another role.
func keepAnAdmin(_ context.Context, st *State) error {
	user := st.Params.Username
	if !slices.Contains(st.Admins, user) || st.Params.Role == events.RoleAdmin {
		return nil
	}
	if others := slices.DeleteFunc(slices.Clone(st.Admins), func(a string) bool { return a == user }); len(others) > 0 {
		return nil
	}
	return Permanentf("%s is the only %s of %s; make another member %s first", user, events.RoleAdmin, st.Workspace, events.RoleAdmin)
}

func (p *Provisioner) grantRole(ctx context.Context, st *State) error {
	err := p.d.Identity.GrantClientRole(ctx, st.Workspace, st.Params.Username, st.Params.Role)
	if errors.Is(err, ErrUnknownUser) {
		return Permanentf("user %q does not exist in the realm: %w", st.Params.Username, err)
	}
	return err
}

func (p *Provisioner) revokeOtherRoles(ctx context.Context, st *State) error {
	for _, role := range events.Roles {
		if role == st.Params.Role {
			continue
		}
		if err := p.d.Identity.RevokeClientRole(ctx, st.Workspace, st.Params.Username, role); err != nil {
			return err
		}
	}
	return nil
}

func (p *Provisioner) revokeRoles(ctx context.Context, st *State) error {
	for _, role := range events.Roles {
		if err := p.d.Identity.RevokeClientRole(ctx, st.Workspace, st.Params.Username, role); err != nil {
			return err
		}
	}
	return nil
}

func (p *Provisioner) memberKeys(ctx context.Context, st *State) error {
	return p.stageMemberKeys(ctx, st)
}

func (p *Provisioner) revokeKeys(ctx context.Context, st *State) error {
	return p.removeMemberKeys(ctx, st.Workspace, st.Params.Username)
}

func memberAdded(st *State) events.Payload {
	ev := &events.MemberAdded{Username: st.Params.Username, Role: st.Params.Role}
	if st.Params.ClientID != "" {
		ev.Kind, ev.ClientID = events.KindClient, st.Params.ClientID
	}
	return ev
}

func memberRemoved(st *State) events.Payload {
	return &events.MemberRemoved{Username: st.Params.Username}
}

// settleAdmins keeps the record's admins up to date once a membership
// change is done, for the next one's last-admin rule.
func settleAdmins(r *Record, st *State) { r.Admins = adminsAfter(st.Admins, *r.Member) }

// adminsAfter returns the ws_admin holders once run has been applied.
func adminsAfter(admins []string, run Run) []string {
	user := run.Params.Username
	out := slices.DeleteFunc(slices.Clone(admins), func(a string) bool { return a == user })
	if run.Saga == SagaMemberAdd && run.Params.Role == events.RoleAdmin {
		out = append(out, user)
	}
	return out
}
