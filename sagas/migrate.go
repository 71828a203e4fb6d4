package sagas

import (
	"context"
	"fmt"

	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// Layouts of a workspace's storage access, kept in its record so an
// upgrade knows what to migrate.
const (
	// LayoutShared: one key pair for every member, named after the
	// workspace (versions before per-member keys); no ws_viewer role.
	LayoutShared = 0
	// LayoutPerMember: a key pair per member, a read-only policy, the
	// ws_viewer role.
	LayoutPerMember = 2
)

// Migrate brings a ready workspace made by an older version to per-member
// keys: the ws_viewer role and the read-only policy are added, every
// member gets keys of their own (from Keycloak's role holders, the source
// of truth for membership), and only then is the shared key pair
// retired, so nobody who is a member is ever without working keys.
func (p *Provisioner) Migrate() Saga {
	return Saga{Name: SagaMigrate, Side: true, Settle: settleLayout, Steps: []Step{
		{Name: "keycloak_roles", Do: p.ensureRoles},
		{Name: "policy_readonly", Do: p.ensureReadOnlyPolicy},
		{Name: "member_keys", Do: p.keysForEveryMember, Events: keysMigrated},
		{Name: "retire_shared_keys", Do: p.retireSharedKeys},
	}}
}

func (p *Provisioner) keysForEveryMember(ctx context.Context, st *State) error {
	var done []string
	for _, role := range []string{events.RoleAdmin, events.RoleAccess, events.RoleViewer} {
		holders, err := p.d.Identity.RoleHolders(ctx, st.Workspace, role)
		if err != nil {
			return err
		}
		for _, u := range holders {
			if err := p.ensureMemberKeys(ctx, st.Workspace, u, role); err != nil {
				return fmt.Errorf("keys of %s: %w", u, err)
			}
			done = append(done, u)
		}
	}
	st.Params.Rotated = done
	return nil
}

func (p *Provisioner) retireSharedKeys(ctx context.Context, st *State) error {
	return p.removeSharedKeys(ctx, st.Workspace)
}

func keysMigrated(st *State) []events.Payload {
	out := make([]events.Payload, 0, len(st.Params.Rotated))
	for _, u := range st.Params.Rotated {
		out = append(out, &events.CredentialsIssued{Username: u, Reason: "migrated"})
	}
	return out
}

func settleLayout(r *Record, _ *State) { r.Layout = LayoutPerMember }

// MigrationID is the id of the migration command of a workspace: the
// same whoever publishes it, so the stream keeps one.
func MigrationID(ws string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(events.DefaultSource+"/migrate/"+ws+"/per-member-keys")).String()
}

// Lister lists the workspaces that have saga records.
type Lister interface {
	Workspaces(ctx context.Context) ([]string, error)
}

// MigrateAll publishes the migration command of every ready workspace
// still on the shared layout; the worker calls it when it starts, so an
// upgrade migrates by itself. Each command is acted on like any other,
// in the workspace's order; repeats are dropped by their id.
func MigrateAll(ctx context.Context, list Lister, progress ProgressStore, pub EventPublisher, log *zap.Logger) (int, error) {
	names, err := list.Workspaces(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, ws := range names {
		rec, rev, err := progress.Load(ctx, ws)
		if err != nil {
			return n, err
		}
		if rev == 0 || rec.Status != events.StatusReady || rec.Layout >= LayoutPerMember {
			continue
		}
		env, err := events.New(ws, &events.CredentialsMigrate{}, events.Meta{ID: MigrationID(ws), Actor: events.DefaultSource})
		if err != nil {
			return n, err
		}
		if _, err := pub.Publish(ctx, env); err != nil {
			return n, fmt.Errorf("publish the migration of %s: %w", ws, err)
		}
		log.Info("migration: per-member keys requested", zap.String("workspace", ws))
		n++
	}
	return n, nil
}
