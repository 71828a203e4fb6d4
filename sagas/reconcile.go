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

// A reconcile (workspace.reconcile) compares a ready or degraded workspace
// with Keycloak and MinIO, as a side saga: the client and its roles, each
// member's role mapping, the bucket, both policies with their exact
// documents, each member's MinIO user and the quota. What is ours and
// missing or changed is repaired with the create's own idempotent calls.
// What cannot be repaired without taking someone else's resource (a
// bucket or client of the workspace's name without our mark) makes the
// workspace degraded, with the reason; a later reconcile that finds
// everything right again brings it back to ready.

// Drift is a reconcile's parameters: what the record said when it started
// and what its steps found, kept through resumes.
type Drift struct {
	Before       string           `json:"before"`                  // the workspace's status
	BeforeReason string           `json:"before_reason,omitempty"` // its last_error when degraded
	Owner        string           `json:"owner,omitempty"`
	Quota        *RecordedQuota   `json:"quota,omitempty"` // nil: unknown, not checked
	Repaired     []events.Repair  `json:"repaired,omitempty"`
	Degraded     *events.Degraded `json:"degraded,omitempty"`
}

func (d *Drift) repaired(kind, resource string) {
	r := events.Repair{Kind: kind, Resource: resource}
	if !slices.Contains(d.Repaired, r) {
		d.Repaired = append(d.Repaired, r)
	}
}

func (d *Drift) degrade(kind, reason string) {
	if d.Degraded == nil { // the first finding is the reason shown
		d.Degraded = &events.Degraded{Kind: kind, Reason: reason}
	}
}

// driftBefore is what a reconcile takes from the record when it starts.
func driftBefore(rec Record) *Drift {
	d := &Drift{Before: rec.Status, Owner: rec.Params.Owner, Quota: rec.Quota}
	if rec.Status == events.StatusDegraded {
		d.BeforeReason = rec.LastError
	}
	return d
}

// reconcileRetryBudget bounds a reconcile step's retries of a provider
// outage: a sweep reconciles every workspace, and each reconcile holding
// a side slot for the engine's full budget (minutes) would stall the
// membership changes that share those slots. A reconcile that gives up is
// recorded as failed (step.failed); the next sweep tries again.
const reconcileRetryBudget = 10 * time.Second

// Reconcile is the saga of workspace.reconcile.
func (p *Provisioner) Reconcile() Saga {
	return Saga{Name: SagaReconcile, Side: true, Quiet: true, RetryBudget: reconcileRetryBudget, Settle: settleDrift, Steps: []Step{
		{Name: "reconcile_identity", Do: p.reconcileIdentity},
		{Name: "reconcile_storage", Do: p.reconcileStorage},
		{Name: "reconcile_report", Do: p.observeDrift, Events: driftEvents},
	}}
}

// drift returns the run's findings, made on the first step of a run
// started without them.
func drift(st *State) *Drift {
	if st.Params.Drift == nil {
		st.Params.Drift = &Drift{Before: events.StatusReady}
	}
	return st.Params.Drift
}

// member is one member as this system recorded them: their key pair in
// the vault, their role from it and the record's admins.
type member struct {
	cred Credential
	role string
}

// members lists the workspace's members with keys that MinIO was told
// of; a pair still pending is a membership change that never finished.
func (p *Provisioner) members(ctx context.Context, st *State) ([]member, error) {
	creds, err := p.d.Vault.Members(ctx, st.Workspace)
	if err != nil {
		return nil, err
	}
	out := make([]member, 0, len(creds))
	for _, c := range creds {
		if c.Pending || c.Username == "" {
			continue
		}
		if c.Policy == "" {
			c.Policy = st.Workspace
		}
		role := events.RoleAccess
		switch {
		case slices.Contains(st.Admins, c.Username):
			role = events.RoleAdmin
		case c.Policy == ReadOnlyPolicy(st.Workspace):
			role = events.RoleViewer
		}
		out = append(out, member{cred: c, role: role})
	}
	return out, nil
}

// reconcileIdentity checks the client, its roles and each member's role
// mapping. A client of the name without our mark is someone else's: the
// workspace is degraded, nothing of it is touched.
func (p *Provisioner) reconcileIdentity(ctx context.Context, st *State) error {
	d, ws := drift(st), st.Workspace
	err := p.d.Identity.CheckClient(ctx, ws)
	if errors.Is(err, ErrNotFound) {
		if _, err = p.d.Identity.EnsureClient(ctx, ws); err == nil {
			d.repaired(events.DriftClient, ws)
		}
	}
	switch {
	case errors.Is(err, ErrNotOurs):
		d.degrade(events.DriftClient, fmt.Sprintf("the Keycloak client %s was made by someone else (it lacks this system's mark); "+
			"remove it, then reconcile", ws))
		return nil
	case err != nil:
		return err
	}
	have, err := p.d.Identity.ClientRoles(ctx, ws)
	if err != nil {
		return err
	}
	for _, role := range events.Roles {
		if slices.Contains(have, role) {
			continue
		}
		if err := p.d.Identity.EnsureClientRoles(ctx, ws, role); err != nil {
			return err
		}
		d.repaired(events.DriftClientRole, role)
	}
	if err := p.reconcileScope(ctx, st); err != nil {
		return err
	}
	return p.reconcileMappings(ctx, st)
}

// reconcileScope gives the workspace its client scope where the
// deployment has them: one removed by hand, or a workspace made before
// workspace scopes were turned on. A scope of its name that someone else
// made is left alone, as the create leaves it (it fails on it).
func (p *Provisioner) reconcileScope(ctx context.Context, st *State) error {
	ws := st.Workspace
	ok, err := p.d.Identity.WorkspaceScopeComplete(ctx, ws)
	if ok || errors.Is(err, ErrNotOurs) {
		return nil
	}
	if err != nil {
		return err
	}
	if err := p.d.Identity.EnsureClientRoles(ctx, ws, events.Roles...); err != nil {
		return err
	}
	drift(st).repaired(events.DriftClientScope, "workspace:"+ws)
	return nil
}

// reconcileMappings gives every member exactly their recorded role.
// Holders this system did not grant are left alone: an operator may have
// mapped them by hand on purpose.
func (p *Provisioner) reconcileMappings(ctx context.Context, st *State) error {
	members, err := p.members(ctx, st)
	if err != nil {
		return err
	}
	holders := map[string][]string{}
	for _, role := range events.Roles {
		if holders[role], err = p.d.Identity.RoleHolders(ctx, st.Workspace, role); err != nil {
			return err
		}
	}
	for _, m := range members {
		user := m.cred.Username
		if !slices.Contains(holders[m.role], user) {
			err := p.d.Identity.GrantClientRole(ctx, st.Workspace, user, m.role)
			if errors.Is(err, ErrUnknownUser) {
				// Their Keycloak user is gone: not ours to make again.
				p.d.Log.Warn("reconcile: a member's user is gone from the realm", zap.String("workspace", st.Workspace),
					zap.String("username", user))
				continue
			}
			if err != nil {
				return err
			}
			drift(st).repaired(events.DriftRoleMap, user)
		}
		for _, role := range events.Roles {
			if role == m.role || !slices.Contains(holders[role], user) {
				continue
			}
			if err := p.d.Identity.RevokeClientRole(ctx, st.Workspace, user, role); err != nil {
				return err
			}
			drift(st).repaired(events.DriftRoleMap, user)
		}
	}
	return nil
}

// observeDrift tells the observer, if any, what this reconcile found.
func (p *Provisioner) observeDrift(_ context.Context, st *State) error {
	if p.d.ObserveDrift != nil {
		d := drift(st)
		p.d.ObserveDrift(d.Repaired, d.Degraded != nil)
	}
	return nil
}

// driftEvents reports what was repaired, then the verdict: degraded (not
// again when nothing changed since the last reconcile said so), or back
// to ready after being degraded.
func driftEvents(st *State) []events.Payload {
	d := drift(st)
	var out []events.Payload
	if len(d.Repaired) > 0 {
		out = append(out, &events.DriftRepaired{Repaired: slices.Clone(d.Repaired)})
	}
	switch {
	case d.Degraded != nil && (d.Before != events.StatusDegraded || d.BeforeReason != d.Degraded.Reason):
		ev := *d.Degraded
		out = append(out, &ev)
	case d.Degraded == nil && d.Before == events.StatusDegraded:
		out = append(out, &events.StatusChanged{Status: events.StatusReady, Previous: events.StatusDegraded, Owner: d.Owner})
	}
	return out
}

// settleDrift puts the verdict in the record.
func settleDrift(r *Record, st *State) {
	d := drift(st)
	switch {
	case d.Degraded != nil:
		r.Status, r.LastError = events.StatusDegraded, d.Degraded.Reason
	case r.Status == events.StatusDegraded:
		r.Status, r.LastError = events.StatusReady, ""
	}
}
