package keycloak

import (
	"context"

	"github.com/Nerzal/gocloak/v13"

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
