package keycloak

import (
	"context"
	"slices"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// What a reconcile reads of a workspace's client.

var _ sagas.IdentityInspector = (*Adapter)(nil)

// CheckClient answers nil for our client, ErrNotFound for none and
// ErrNotOurs for one without our attribute.
func (a *Adapter) CheckClient(ctx context.Context, clientID string) error {
	ctx, cancel := a.call(ctx)
	defer cancel()
	_, err := a.ourClient(ctx, clientID)
	return err
}

// ClientRoles lists our client's role names.
func (a *Adapter) ClientRoles(ctx context.Context, clientID string) ([]string, error) {
	ctx, cancel := a.call(ctx)
	defer cancel()
	c, err := a.ourClient(ctx, clientID)
	if err != nil {
		return nil, err
	}
	var have []*gocloak.Role
	err = a.admin(ctx, func(token string) error {
		var err error
		have, err = a.gc.GetClientRoles(ctx, token, a.cfg.Realm, *c.ID, gocloak.GetRoleParams{})
		return err
	})
	if err != nil {
		return nil, classify(err, "list roles of client %q", clientID)
	}
	out := make([]string, 0, len(have))
	for _, r := range have {
		if r.Name != nil {
			out = append(out, *r.Name)
		}
	}
	return out, nil
}

// WorkspaceScopeComplete implements sagas.IdentityInspector: the scope
// exists (by our id, with its name) and maps every workspace role. The
// sign-in clients' optional scopes are not read (one call more per
// sign-in client and workspace each sweep); a repair sets them again.
func (a *Adapter) WorkspaceScopeComplete(ctx context.Context, clientID string) (bool, error) {
	if len(a.cfg.WorkspaceScopeClients) == 0 {
		return true, nil
	}
	ctx, cancel := a.call(ctx)
	defer cancel()
	c, err := a.ourClient(ctx, clientID)
	if err != nil {
		return false, err
	}
	name := WorkspaceScopePrefix + clientID
	id := a.workspaceScopeID(name)
	if found, err := a.hasWorkspaceScope(ctx, id, name); err != nil || !found {
		return false, err
	}
	var mapped []*gocloak.Role
	err = a.admin(ctx, func(token string) error {
		var err error
		mapped, err = a.gc.GetClientScopesScopeMappingsClientRoles(ctx, token, a.cfg.Realm, id, *c.ID)
		return err
	})
	if err != nil {
		return false, classify(err, "read the roles mapped into client scope %q", name)
	}
	for _, role := range events.Roles {
		if !slices.ContainsFunc(mapped, func(r *gocloak.Role) bool { return r.Name != nil && *r.Name == role }) {
			return false, nil
		}
	}
	return true, nil
}
