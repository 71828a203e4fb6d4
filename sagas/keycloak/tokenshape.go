package keycloak

import (
	"context"
	"fmt"
	"slices"

	"github.com/Nerzal/gocloak/v13"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/sagas"
)

// TokenShape is what a member's token carries of their workspaces. Each
// workspace is a client whose role the member holds; whether that role
// reaches a token is up to the client the user signs in with: with
// fullScopeAllowed on, every role the user holds does, with it off only
// the roles in that client's scope mapping.
type TokenShape string

const (
	// TokenShapeAsIs leaves the sign-in clients as the realm has them.
	TokenShapeAsIs TokenShape = ""
	// TokenShapeEOEPCA: every workspace the user belongs to in aud and
	// resource_access, as in EOEPCA and the contract; the token grows by
	// the workspace's name and some 60 bytes more a membership (1 MiB near
	// 14,000 memberships of 13-character names).
	TokenShapeEOEPCA TokenShape = "eoepca"
	// TokenShapeCompact: no workspace in the token, whose size no longer
	// depends on the memberships; the realm roles given stay in scope.
	// For deployments whose services decide from the API's read model
	// rather than from the token, as the API itself does.
	TokenShapeCompact TokenShape = "compact"
)

// ParseTokenShape reads a shape's name; "" is TokenShapeAsIs.
func ParseTokenShape(s string) (TokenShape, error) {
	switch sh := TokenShape(s); sh {
	case TokenShapeAsIs, TokenShapeEOEPCA, TokenShapeCompact:
		return sh, nil
	}
	return "", fmt.Errorf("token shape %q: want %q or %q", s, TokenShapeEOEPCA, TokenShapeCompact)
}

// ApplyTokenShape sets the clients users sign in with (signIn, by
// clientId) for shape, and for TokenShapeCompact puts realmRoles (the
// platform admin role the API reads) in their scope first, so that no
// token issued meanwhile loses them. It is idempotent, and safe for
// several workers at once. An unknown client or role is permanent. The
// worker's service account needs manage-clients and view-realm.
func (a *Adapter) ApplyTokenShape(ctx context.Context, shape TokenShape, signIn, realmRoles []string) error {
	if shape == TokenShapeAsIs {
		return nil
	}
	if _, err := ParseTokenShape(string(shape)); err != nil {
		return sagas.Permanent(err)
	}
	ctx, cancel := a.call(ctx)
	defer cancel()
	for _, clientID := range signIn {
		c, err := a.findClient(ctx, clientID)
		if err != nil {
			return err
		}
		if c == nil {
			return sagas.Permanentf("sign-in client %q: %w", clientID, sagas.ErrNotFound)
		}
		if shape == TokenShapeCompact {
			if err := a.scopeRealmRoles(ctx, c, realmRoles); err != nil {
				return err
			}
		}
		if err := a.setFullScope(ctx, c, shape == TokenShapeEOEPCA); err != nil {
			return err
		}
	}
	return nil
}

// scopeRealmRoles adds the realm roles missing from c's scope mapping.
// Keycloak wants each role's id, so it is read first.
func (a *Adapter) scopeRealmRoles(ctx context.Context, c *gocloak.Client, names []string) error {
	have, err := a.realmScope(ctx, *c.ID)
	if err != nil {
		return classify(err, "read the scope of client %q", *c.ClientID)
	}
	for _, name := range names {
		if slices.Contains(have, name) {
			continue
		}
		var r *gocloak.Role
		err := a.admin(ctx, func(token string) error {
			var err error
			r, err = a.gc.GetRealmRole(ctx, token, a.cfg.Realm, name)
			return err
		})
		if err != nil {
			return classify(err, "read realm role %q", name)
		}
		err = a.admin(ctx, func(token string) error {
			return a.gc.CreateClientScopeMappingsRealmRoles(ctx, token, a.cfg.Realm, *c.ID, []gocloak.Role{{ID: r.ID, Name: r.Name}})
		})
		if err != nil {
			return classify(err, "put realm role %q in the scope of client %q", name, *c.ClientID)
		}
		a.log.Info("keycloak realm role put in a sign-in client's scope", zap.String("client_id", *c.ClientID), zap.String("role", name))
	}
	return nil
}

func (a *Adapter) realmScope(ctx context.Context, clientUUID string) ([]string, error) {
	var roles []*gocloak.Role
	err := a.admin(ctx, func(token string) error {
		var err error
		roles, err = a.gc.GetClientScopeMappingsRealmRoles(ctx, token, a.cfg.Realm, clientUUID)
		return err
	})
	names := make([]string, 0, len(roles))
	for _, r := range roles {
		if r.Name != nil {
			names = append(names, *r.Name)
		}
	}
	return names, err
}

// setFullScope turns c's fullScopeAllowed on or off unless it already is.
func (a *Adapter) setFullScope(ctx context.Context, c *gocloak.Client, full bool) error {
	if c.FullScopeAllowed != nil && *c.FullScopeAllowed == full {
		return nil
	}
	c.FullScopeAllowed = &full
	err := a.admin(ctx, func(token string) error { return a.gc.UpdateClient(ctx, token, a.cfg.Realm, *c) })
	if err != nil {
		return classify(err, "set fullScopeAllowed=%t on client %q", full, *c.ClientID)
	}
	a.log.Info("keycloak sign-in client's full scope set", zap.String("client_id", *c.ClientID), zap.Bool("full_scope", full))
	return nil
}
