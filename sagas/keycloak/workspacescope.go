package keycloak

import (
	"context"
	"fmt"
	"net/http"

	"github.com/Nerzal/gocloak/v13"
	"github.com/google/uuid"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/sagas"
)

// WorkspaceScopePrefix starts the name of a workspace's client scope:
// "workspace:ws-foo". A token asked for with scope=workspace:ws-foo
// through a sign-in client that has it as an optional scope carries that
// workspace in aud and resource_access (if the user is a member), and no
// other, whatever the token shape: EOEPCA's shape for one workspace, on
// demand, in a realm whose tokens are otherwise compact.
const WorkspaceScopePrefix = "workspace:"

// scopeNamespace makes the ids of workspace client scopes. The id is
// derived from the realm and the scope's name, so the scope is found by
// id, without listing every client scope (Keycloak has no search by
// name), and it is the mark that the scope is ours: a scope of that name
// with another id was made by someone else.
var scopeNamespace = uuid.MustParse("5c0b6f7e-5d2e-4d0a-9a8e-7f1f3c2b9d41")

func (a *Adapter) workspaceScopeID(name string) string {
	return uuid.NewSHA1(scopeNamespace, []byte(a.cfg.Realm+"/"+name)).String()
}

// ensureWorkspaceScope makes the workspace's client scope if absent, maps
// the workspace's roles into it and makes it optional on the sign-in
// clients. Each call is idempotent in Keycloak.
func (a *Adapter) ensureWorkspaceScope(ctx context.Context, ws *gocloak.Client, roles []string) error {
	name := WorkspaceScopePrefix + *ws.ClientID
	id := a.workspaceScopeID(name)
	if err := a.createWorkspaceScope(ctx, id, name); err != nil {
		return err
	}
	reps := make([]gocloak.Role, len(roles))
	for i := range roles {
		reps[i] = gocloak.Role{Name: &roles[i]}
	}
	err := a.admin(ctx, func(token string) error {
		return a.gc.CreateClientScopesScopeMappingsClientRoles(ctx, token, a.cfg.Realm, id, *ws.ID, reps)
	})
	if err != nil {
		return classify(err, "map the roles of client %q into client scope %q", *ws.ClientID, name)
	}
	for _, clientID := range a.cfg.WorkspaceScopeClients {
		c, err := a.findClient(ctx, clientID)
		if err != nil {
			return err
		}
		if c == nil {
			return sagas.Permanentf("sign-in client %q: %w", clientID, sagas.ErrNotFound)
		}
		err = a.admin(ctx, func(token string) error { return a.gc.AddOptionalScopeToClient(ctx, token, a.cfg.Realm, *c.ID, id) })
		if err != nil {
			return classify(err, "make client scope %q optional on client %q", name, clientID)
		}
	}
	return nil
}

func (a *Adapter) createWorkspaceScope(ctx context.Context, id, name string) error {
	found, err := a.hasWorkspaceScope(ctx, id, name)
	if err != nil || found {
		return err
	}
	protocol, yes, no := "openid-connect", "true", "false"
	err = a.admin(ctx, func(token string) error {
		_, err := a.gc.CreateClientScope(ctx, token, a.cfg.Realm, gocloak.ClientScope{
			ID: &id, Name: &name, Protocol: &protocol,
			Description:           gocloak.StringP("Roles of workspace " + name[len(WorkspaceScopePrefix):] + ", managed by the workspace provisioner"),
			ClientScopeAttributes: &gocloak.ClientScopeAttributes{IncludeInTokenScope: &yes, DisplayOnConsentScreen: &no},
		})
		return err
	})
	if status(err) == http.StatusConflict {
		// Made meanwhile by another worker (then it has our id), or a
		// scope of that name is someone else's.
		if found, err := a.hasWorkspaceScope(ctx, id, name); err != nil || found {
			return err
		}
		return fmt.Errorf("client scope %q exists with an id that is not ours: %w", name, sagas.ErrNotOurs)
	}
	if err != nil {
		return classify(err, "create client scope %q", name)
	}
	a.log.Info("keycloak workspace client scope created", zap.String("scope", name), zap.String("id", id))
	return nil
}

// hasWorkspaceScope tells whether our scope exists: by its id, with its name.
func (a *Adapter) hasWorkspaceScope(ctx context.Context, id, name string) (bool, error) {
	var sc *gocloak.ClientScope
	err := a.admin(ctx, func(token string) error {
		var err error
		sc, err = a.gc.GetClientScope(ctx, token, a.cfg.Realm, id)
		return err
	})
	switch {
	case status(err) == http.StatusNotFound:
		return false, nil
	case err != nil:
		return false, classify(err, "read client scope %q", name)
	case sc.Name == nil || *sc.Name != name:
		return false, fmt.Errorf("client scope %s is named %q, not %q: %w", id, gocloak.PString(sc.Name), name, sagas.ErrNotOurs)
	}
	return true, nil
}

// deleteWorkspaceScope removes the workspace's client scope, if there is
// one; Keycloak takes it off every client with it.
func (a *Adapter) deleteWorkspaceScope(ctx context.Context, clientID string) error {
	name := WorkspaceScopePrefix + clientID
	id := a.workspaceScopeID(name)
	err := a.admin(ctx, func(token string) error { return a.gc.DeleteClientScope(ctx, token, a.cfg.Realm, id) })
	if err == nil {
		a.log.Info("keycloak workspace client scope deleted", zap.String("scope", name), zap.String("id", id))
	}
	if status(err) == http.StatusNotFound {
		return nil
	}
	return classify(err, "delete client scope %q", name)
}
