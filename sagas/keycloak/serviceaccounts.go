package keycloak

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/sagas"
)

// serviceAccountPrefix starts the username Keycloak gives a client's
// service-account user: "service-account-" + the clientId in lower case.
const serviceAccountPrefix = "service-account-"

// ServiceAccountUser returns the username of the client application's
// service-account user, through the client's service-account-user
// endpoint: Keycloak's user search leaves service-account users out, so
// a name lookup cannot find them. ErrUnknownUser when there is no such
// client or it has no service account.
func (a *Adapter) ServiceAccountUser(ctx context.Context, clientID string) (string, error) {
	ctx, cancel := a.call(ctx)
	defer cancel()
	u, err := a.serviceAccount(ctx, clientID)
	if err != nil {
		return "", err
	}
	if u == nil || u.Username == nil {
		return "", fmt.Errorf("client %q has no service account: %w", clientID, sagas.ErrUnknownUser)
	}
	return *u.Username, nil
}

// serviceAccount returns the client's service-account user, nil when
// there is no such client or it has no service account.
func (a *Adapter) serviceAccount(ctx context.Context, clientID string) (*gocloak.User, error) {
	c, err := a.findClient(ctx, clientID)
	if err != nil || c == nil {
		return nil, err
	}
	var u *gocloak.User
	err = a.admin(ctx, func(token string) error {
		var err error
		u, err = a.gc.GetClientServiceAccount(ctx, token, a.cfg.Realm, *c.ID)
		return err
	})
	// Keycloak answers 400 "Service account not enabled for the client"
	// (and 404 for a client removed meanwhile).
	if s := status(err); s == http.StatusBadRequest || s == http.StatusNotFound {
		return nil, nil
	}
	if err != nil {
		return nil, classify(err, "look up the service account of client %q", clientID)
	}
	return u, nil
}

// findServiceAccountUser finds a service-account user by its username,
// through its client: "" when the name is not one or nothing matches.
func (a *Adapter) findServiceAccountUser(ctx context.Context, username string) (string, error) {
	lower := strings.ToLower(username)
	if !strings.HasPrefix(lower, serviceAccountPrefix) {
		return "", nil
	}
	u, err := a.serviceAccount(ctx, username[len(serviceAccountPrefix):])
	if err != nil || u == nil || u.Username == nil || u.ID == nil || !strings.EqualFold(*u.Username, username) {
		return "", err
	}
	return *u.ID, nil
}

// rolePage is how many holders of a role one request asks for.
const rolePage = 100

// RoleHolders returns the usernames that hold the client role, a page
// at a time (Keycloak answers at most max per request).
func (a *Adapter) RoleHolders(ctx context.Context, clientID, role string) ([]string, error) {
	ctx, cancel := a.call(ctx)
	defer cancel()
	c, err := a.ourClient(ctx, clientID)
	if err != nil {
		return nil, permanentIfMissing(err)
	}
	var out []string
	for first := 0; ; first += rolePage {
		var page []*gocloak.User
		err := a.admin(ctx, func(token string) error {
			var err error
			page, err = a.gc.GetUsersByClientRoleName(ctx, token, a.cfg.Realm, *c.ID, role,
				gocloak.GetUsersByRoleParams{First: gocloak.IntP(first), Max: gocloak.IntP(rolePage)})
			return err
		})
		if err != nil {
			return nil, classify(err, "list holders of %s/%s", clientID, role)
		}
		for _, u := range page {
			if u.Username != nil {
				out = append(out, *u.Username)
			}
		}
		if len(page) < rolePage {
			return out, nil
		}
	}
}
