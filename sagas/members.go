package sagas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

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

// MemberRun is a membership change in progress, kept in its workspace's
// Record (see Record for why there). Its steps resume after a crash like
// a saga's; each is idempotent, so a repeated step is harmless.
type MemberRun struct {
	Saga          string   `json:"saga"` // SagaMemberAdd or SagaMemberRemove
	CommandID     string   `json:"command_id"`
	CorrelationID string   `json:"correlation_id"`
	Actor         string   `json:"actor"`
	StepsDone     []string `json:"steps_done"`
	Params        Params   `json:"params"`
}

func (m MemberRun) meta() events.Meta {
	return events.Meta{Actor: m.Actor, CorrelationID: m.CorrelationID, CausationID: m.CommandID}
}

// maxApplied bounds Record.MembersApplied: redeliveries come soon after
// the original, within far fewer commands than this.
const maxApplied = 64

// admins returns the ws_admin holders the record knows of.
func (r Record) admins() []string {
	if r.Admins == nil && r.Params.Owner != "" {
		return []string{r.Params.Owner}
	}
	return slices.Clone(r.Admins)
}

// MemberAdd grants a user one workspace role and takes the other away,
// granting first so a role change never leaves the user without access.
func (p *Provisioner) MemberAdd() Saga {
	return Saga{Name: SagaMemberAdd, Steps: []Step{
		{Name: "keep_an_admin", Do: keepAnAdmin},
		{Name: "grant_role", Do: p.grantRole},
		{Name: "revoke_other_role", Do: p.revokeOtherRole, Event: memberAdded},
	}}
}

// MemberRemove takes both workspace roles away from a user.
func (p *Provisioner) MemberRemove() Saga {
	return Saga{Name: SagaMemberRemove, Steps: []Step{
		{Name: "keep_an_admin", Do: keepAnAdmin},
		{Name: "revoke_roles", Do: p.revokeRoles, Event: memberRemoved},
	}}
}

// keepAnAdmin refuses a change that would leave no ws_admin: removing
// the only one, or making them ws_access.
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

func (p *Provisioner) revokeOtherRole(ctx context.Context, st *State) error {
	other := events.RoleAccess
	if st.Params.Role == events.RoleAccess {
		other = events.RoleAdmin
	}
	return p.d.Identity.RevokeClientRole(ctx, st.Workspace, st.Params.Username, other)
}

func (p *Provisioner) revokeRoles(ctx context.Context, st *State) error {
	for _, role := range []string{events.RoleAccess, events.RoleAdmin} {
		if err := p.d.Identity.RevokeClientRole(ctx, st.Workspace, st.Params.Username, role); err != nil {
			return err
		}
	}
	return nil
}

func memberAdded(st *State) events.Payload {
	return &events.MemberAdded{Username: st.Params.Username, Role: st.Params.Role}
}

func memberRemoved(st *State) events.Payload {
	return &events.MemberRemoved{Username: st.Params.Username}
}

// adminsAfter returns the ws_admin holders once run has been applied.
func adminsAfter(admins []string, run MemberRun) []string {
	user := run.Params.Username
	out := slices.DeleteFunc(slices.Clone(admins), func(a string) bool { return a == user })
	if run.Saga == SagaMemberAdd && run.Params.Role == events.RoleAdmin {
		out = append(out, user)
	}
	return out
}

// ended records that the membership command id is over, keeping the
// latest maxApplied ids.
func ended(applied []string, id string) []string {
	out := append(slices.Clone(applied), id)
	if len(out) > maxApplied {
		out = out[len(out)-maxApplied:]
	}
	return out
}

// runMember drives rec.Member, which the caller saved at rev holding our
// lease, from its first unfinished step. Membership changes publish no
// status events: the workspace stays as it is. Returns what run does.
func (r *Runner) runMember(ctx context.Context, s Saga, ws string, rec Record, rev uint64) error {
	h := &handle{r: r, ws: ws, rec: rec, rev: rev, member: true}
	defer h.keepLease(ctx)()
	st := &State{Workspace: ws, Params: rec.Member.Params, Admins: rec.admins()}
	for _, step := range s.Steps[nextStep(s, rec.Member.StepsDone):] {
		if err := h.checkpoint(ctx); err != nil {
			return h.abort(ctx, err)
		}
		if err := r.attempt(ctx, ws, s, step, st); err != nil {
			if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
				return h.abort(ctx, ErrStopped)
			}
			return h.failMember(ctx, s, step.Name, err)
		}
		if err := h.memberStepDone(ctx, s, step, st); err != nil {
			return h.abort(ctx, err)
		}
	}
	err := h.update(ctx, func(r *Record) {
		r.Admins = adminsAfter(st.Admins, *r.Member)
		r.MembersApplied = ended(r.MembersApplied, r.Member.CommandID)
		r.Member, r.Lease = nil, nil
	})
	if err != nil {
		return h.abort(ctx, err)
	}
	r.log.Info("saga: membership changed", zap.String("workspace", ws), zap.String("saga", s.Name),
		zap.String("username", st.Params.Username), zap.String("role", st.Params.Role))
	return nil
}

func (h *handle) memberStepDone(ctx context.Context, s Saga, step Step, st *State) error {
	if err := h.publish(ctx, step.Name, "completed", &events.StepCompleted{Saga: s.Name, Step: step.Name}); err != nil {
		return err
	}
	if step.Event != nil {
		if err := h.publish(ctx, step.Name, "event", step.Event(st)); err != nil {
			return err
		}
	}
	return h.update(ctx, func(r *Record) { r.Member.StepsDone = append(r.Member.StepsDone, step.Name) })
}

// failMember records a membership change that failed: a step.failed
// event, then the record without the run, the command marked as ended.
// The workspace's status is left alone.
func (h *handle) failMember(ctx context.Context, s Saga, step string, cause error) error {
	msg := truncate(cause.Error(), 2000)
	retryable := !IsPermanent(cause)
	failed := &events.StepFailed{Saga: s.Name, Step: step, Error: msg, Retryable: retryable}
	if err := h.publish(ctx, step, "failed", failed); err != nil {
		return h.abort(ctx, err)
	}
	err := h.update(ctx, func(r *Record) {
		r.MembersApplied = ended(r.MembersApplied, r.Member.CommandID)
		r.Member, r.Lease = nil, nil
	})
	if err != nil {
		return h.abort(ctx, err)
	}
	h.r.log.Warn("saga: membership change failed", zap.String("workspace", h.ws), zap.String("saga", s.Name),
		zap.String("step", step), zap.Bool("retryable", retryable), zap.String("error", msg))
	return &FailedError{Saga: s.Name, Step: step, Retryable: retryable, Err: cause}
}

// member starts a membership change of a ready workspace.
func (c *Coordinator) member(ctx context.Context, env events.Envelope, p Params, s Saga, rec Record, rev uint64) error {
	switch {
	case slices.Contains(rec.MembersApplied, env.ID):
		c.skip(env, rec, "this membership change was applied already")
		return nil
	case rev == 0:
		return Rejectf("workspace %s does not exist", env.Subject)
	case rec.Status != events.StatusReady:
		return Rejectf("workspace %s is %s (%s saga): members can change only while it is ready",
			env.Subject, rec.Status, rec.Saga)
	}
	next := rec
	next.Member = &MemberRun{Saga: s.Name, CommandID: env.ID, CorrelationID: env.CorrelationID, Actor: env.Actor,
		StepsDone: []string{}, Params: p}
	next.Lease = c.runner.lease()
	newRev, err := c.progress.Save(ctx, env.Subject, next, rev)
	if err != nil {
		return err
	}
	c.log.Info("saga: started", zap.String("workspace", env.Subject), zap.String("saga", s.Name),
		zap.String("command_id", env.ID), zap.String("actor", env.Actor), zap.String("username", p.Username))
	return c.runner.runMember(ctx, s, env.Subject, next, newRev)
}

// resumeMember takes over a membership change left mid-way, unless
// another live worker holds the workspace.
func (c *Coordinator) resumeMember(ctx context.Context, ws string, rec Record, rev uint64) error {
	if rec.LeasedByOther(c.runner.cfg.WorkerID, time.Now()) {
		return fmt.Errorf("%s held by %s: %w", ws, rec.Lease.WorkerID, ErrBusy)
	}
	s, ok := c.sagas.ByName(rec.Member.Saga)
	if !ok {
		return Rejectf("workspace %s: unknown membership saga %q in its record", ws, rec.Member.Saga)
	}
	rec.Lease = c.runner.lease()
	newRev, err := c.progress.Save(ctx, ws, rec, rev)
	if err != nil {
		return err
	}
	c.log.Info("saga: resuming", zap.String("workspace", ws), zap.String("saga", rec.Member.Saga),
		zap.Strings("steps_done", rec.Member.StepsDone))
	return c.runner.runMember(ctx, s, ws, rec, newRev)
}
