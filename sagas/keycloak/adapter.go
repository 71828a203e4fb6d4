package keycloak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/Nerzal/gocloak/v13"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/tracing"
)

// Adapter implements sagas.Identity against one Keycloak realm. It is safe
// for concurrent use.
type Adapter struct {
	cfg    Config
	gc     *gocloak.GoCloak
	log    *zap.Logger
	tokens *tokens
}

var _ sagas.Identity = (*Adapter)(nil)

// New builds the adapter; it does not contact Keycloak until first used.
func New(cfg Config, log *zap.Logger) (*Adapter, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	a := &Adapter{cfg: cfg, gc: gocloak.NewClient(strings.TrimRight(cfg.BaseURL, "/")), log: log}
	a.gc.RestyClient().SetTransport(tracing.Transport(nil)) // each Admin REST call a span of the step
	a.tokens = newTokens(func(ctx context.Context) (*gocloak.JWT, error) {
		jwt, err := a.gc.LoginClient(ctx, cfg.ClientID, cfg.ClientSecret, cfg.Realm)
		if err != nil {
			return nil, classify(err, "log in to Keycloak realm %q as client %q", cfg.Realm, cfg.ClientID)
		}
		a.log.Debug("keycloak token renewed", zap.Int("expires_in_s", jwt.ExpiresIn))
		return jwt, nil
	})
	return a, nil
}

// admin runs one Admin REST call with a valid token. A 401 means Keycloak
// no longer accepts the token (expired early, signing key rotated, session
// revoked): drop it and try once more with a fresh one.
func (a *Adapter) admin(ctx context.Context, call func(token string) error) error {
	for attempt := 0; ; attempt++ {
		token, err := a.tokens.get(ctx)
		if err != nil {
			return err
		}
		err = call(token)
		if status(err) != http.StatusUnauthorized || attempt > 0 {
			return err
		}
		a.log.Debug("keycloak refused the token; renewing it")
		a.tokens.reject(ctx, token)
	}
}

// isOurs tells whether the client carries our managed-by attribute.
func isOurs(c *gocloak.Client) bool {
	return c.Attributes != nil && (*c.Attributes)[sagas.ManagedByKey] == sagas.ManagedByValue
}

// findClient looks a client up by clientId; nil when there is none.
// Keycloak's clientId filter is already exact unless search=true; the
// comparison here guards against a server that treats it as a search.
func (a *Adapter) findClient(ctx context.Context, clientID string) (*gocloak.Client, error) {
	var found []*gocloak.Client
	err := a.admin(ctx, func(token string) error {
		var err error
		found, err = a.gc.GetClients(ctx, token, a.cfg.Realm, gocloak.GetClientsParams{ClientID: &clientID})
		return err
	})
	if err != nil {
		return nil, classify(err, "look up client %q", clientID)
	}
	for _, c := range found {
		if c.ClientID != nil && *c.ClientID == clientID && c.ID != nil {
			return c, nil
		}
	}
	return nil, nil
}

// ourClient finds our client: ErrNotFound if absent, ErrNotOurs if foreign.
func (a *Adapter) ourClient(ctx context.Context, clientID string) (*gocloak.Client, error) {
	c, err := a.findClient(ctx, clientID)
	switch {
	case err != nil:
		return nil, err
	case c == nil:
		return nil, fmt.Errorf("client %q: %w", clientID, sagas.ErrNotFound)
	case !isOurs(c):
		return nil, fmt.Errorf("client %q has no %s=%s attribute: %w", clientID, sagas.ManagedByKey, sagas.ManagedByValue, sagas.ErrNotOurs)
	}
	return c, nil
}

func (a *Adapter) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, a.cfg.Timeout)
}

// EnsureClient returns our client's id, creating the client if absent.
func (a *Adapter) EnsureClient(ctx context.Context, clientID string) (string, error) {
	ctx, cancel := a.call(ctx)
	defer cancel()
	c, err := a.ourClient(ctx, clientID)
	if err == nil {
		return *c.ID, nil
	}
	if !errors.Is(err, sagas.ErrNotFound) {
		return "", err
	}
	var id string
	err = a.admin(ctx, func(token string) error {
		var err error
		id, err = a.gc.CreateClient(ctx, token, a.cfg.Realm, workspaceClient(clientID))
		return err
	})
	if status(err) == http.StatusConflict {
		// Another worker created it between our look-up and our create.
		c, err := a.ourClient(ctx, clientID)
		if err != nil {
			return "", err
		}
		return *c.ID, nil
	}
	if err != nil {
		return "", classify(err, "create client %q", clientID)
	}
	if id == "" {
		return "", fmt.Errorf("create client %q: Keycloak answered without a Location", clientID)
	}
	a.log.Info("keycloak client created", zap.String("client_id", clientID), zap.String("id", id))
	return id, nil
}

// workspaceClient is the representation of a new workspace client. The
// client is an audience and a container of roles, like a resource server:
// members' tokens, obtained through other clients, carry it in aud and
// resource_access once they hold one of its roles (Keycloak's audience
// resolve mapper adds any client the user has a role of). Nothing ever
// logs in as it, so it is bearer-only and confidential, with every flow
// off: no secret to leak, no redirect URI to abuse.
func workspaceClient(clientID string) gocloak.Client {
	off, on := false, true
	protocol := "openid-connect"
	return gocloak.Client{
		ClientID:                  &clientID,
		Name:                      &clientID,
		Description:               gocloak.StringP("Workspace " + clientID + ", managed by the workspace provisioner"),
		Protocol:                  &protocol,
		PublicClient:              &off,
		BearerOnly:                &on,
		StandardFlowEnabled:       &off,
		ImplicitFlowEnabled:       &off,
		DirectAccessGrantsEnabled: &off,
		ServiceAccountsEnabled:    &off,
		Attributes:                &map[string]string{sagas.ManagedByKey: sagas.ManagedByValue},
	}
}

// DeleteClient removes our client; Keycloak removes its roles and every
// mapping to them with it.
func (a *Adapter) DeleteClient(ctx context.Context, clientID string) error {
	ctx, cancel := a.call(ctx)
	defer cancel()
	c, err := a.ourClient(ctx, clientID)
	if errors.Is(err, sagas.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if len(a.cfg.WorkspaceScopeClients) > 0 {
		if err := a.deleteWorkspaceScope(ctx, clientID); err != nil {
			return err
		}
	}
	err = a.admin(ctx, func(token string) error { return a.gc.DeleteClient(ctx, token, a.cfg.Realm, *c.ID) })
	if status(err) == http.StatusNotFound {
		return nil
	}
	if err == nil {
		a.log.Info("keycloak client deleted", zap.String("client_id", clientID), zap.String("id", *c.ID))
	}
	return classify(err, "delete client %q", clientID)
}

// EnsureClientRoles creates the roles our client lacks: one listing, then
// one create per missing role.
func (a *Adapter) EnsureClientRoles(ctx context.Context, clientID string, roles ...string) error {
	ctx, cancel := a.call(ctx)
	defer cancel()
	c, err := a.ourClient(ctx, clientID)
	if err != nil {
		return permanentIfMissing(err)
	}
	var have []*gocloak.Role
	err = a.admin(ctx, func(token string) error {
		var err error
		have, err = a.gc.GetClientRoles(ctx, token, a.cfg.Realm, *c.ID, gocloak.GetRoleParams{})
		return err
	})
	if err != nil {
		return classify(err, "list roles of client %q", clientID)
	}
	for _, role := range roles {
		if slices.ContainsFunc(have, func(r *gocloak.Role) bool { return r.Name != nil && *r.Name == role }) {
			continue
		}
		err := a.admin(ctx, func(token string) error {
			_, err := a.gc.CreateClientRole(ctx, token, a.cfg.Realm, *c.ID, gocloak.Role{Name: &role})
			return err
		})
		if status(err) == http.StatusConflict {
			continue // created meanwhile: what we wanted
		}
		if err != nil {
			return classify(err, "create role %q of client %q", role, clientID)
		}
		a.log.Info("keycloak client role created", zap.String("client_id", clientID), zap.String("role", role))
	}
	if len(a.cfg.WorkspaceScopeClients) > 0 {
		return a.ensureWorkspaceScope(ctx, c, roles)
	}
	return nil
}

// permanentIfMissing: a step that needs our client, finding none, cannot
// be helped by retrying; the saga's order or an outside delete is wrong.
func permanentIfMissing(err error) error {
	if errors.Is(err, sagas.ErrNotFound) {
		return sagas.Permanent(err)
	}
	return err
}

// findUser returns the id of the user with exactly that username, "" if
// none. Keycloak stores usernames in lower case and matches exact=true
// case-insensitively, hence EqualFold.
func (a *Adapter) findUser(ctx context.Context, username string) (string, error) {
	var users []*gocloak.User
	err := a.admin(ctx, func(token string) error {
		var err error
		users, err = a.gc.GetUsers(ctx, token, a.cfg.Realm, gocloak.GetUsersParams{
			Username: &username, Exact: gocloak.BoolP(true), BriefRepresentation: gocloak.BoolP(true),
		})
		return err
	})
	if err != nil {
		return "", classify(err, "look up user %q", username)
	}
	for _, u := range users {
		if u.Username != nil && strings.EqualFold(*u.Username, username) && u.ID != nil {
			return *u.ID, nil
		}
	}
	return a.findServiceAccountUser(ctx, username)
}

// mappedRole returns the user's direct mapping to that role of the
// client, nil if there is none.
func (a *Adapter) mappedRole(ctx context.Context, clientUUID, userID, role string) (*gocloak.Role, error) {
	var mapped []*gocloak.Role
	err := a.admin(ctx, func(token string) error {
		var err error
		mapped, err = a.gc.GetClientRolesByUserID(ctx, token, a.cfg.Realm, clientUUID, userID)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, r := range mapped {
		if r.Name != nil && *r.Name == role && r.ID != nil {
			return r, nil
		}
	}
	return nil, nil
}

// GrantClientRole maps the user to the client role unless it already is.
// Keycloak wants the role's id and name in the mapping request (and
// answers 404 "Role not found" if either is off), so the role is read
// first.
func (a *Adapter) GrantClientRole(ctx context.Context, clientID, username, role string) error {
	ctx, cancel := a.call(ctx)
	defer cancel()
	c, err := a.ourClient(ctx, clientID)
	if err != nil {
		return permanentIfMissing(err)
	}
	userID, err := a.findUser(ctx, username)
	if err != nil {
		return err
	}
	if userID == "" {
		return fmt.Errorf("grant %s/%s to %q: %w", clientID, role, username, sagas.ErrUnknownUser)
	}
	if m, err := a.mappedRole(ctx, *c.ID, userID, role); err != nil {
		return classify(err, "read %q's roles of client %q", username, clientID)
	} else if m != nil {
		return nil
	}
	var r *gocloak.Role
	err = a.admin(ctx, func(token string) error {
		var err error
		r, err = a.gc.GetClientRole(ctx, token, a.cfg.Realm, *c.ID, role)
		return err
	})
	if status(err) == http.StatusNotFound {
		return sagas.Permanentf("grant %s/%s to %q: role %w", clientID, role, username, sagas.ErrNotFound)
	}
	if err != nil {
		return classify(err, "read role %q of client %q", role, clientID)
	}
	err = a.admin(ctx, func(token string) error {
		return a.gc.AddClientRolesToUser(ctx, token, a.cfg.Realm, *c.ID, userID, []gocloak.Role{{ID: r.ID, Name: r.Name}})
	})
	if err != nil {
		return classify(err, "grant %s/%s to %q", clientID, role, username)
	}
	a.log.Info("keycloak client role granted", zap.String("client_id", clientID), zap.String("role", role), zap.String("username", username))
	return nil
}

// RevokeClientRole removes the mapping if there is one. No client, no
// user, no role or no mapping all mean there is nothing to revoke.
func (a *Adapter) RevokeClientRole(ctx context.Context, clientID, username, role string) error {
	ctx, cancel := a.call(ctx)
	defer cancel()
	c, err := a.ourClient(ctx, clientID)
	if errors.Is(err, sagas.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	userID, err := a.findUser(ctx, username)
	if err != nil || userID == "" {
		return err
	}
	m, err := a.mappedRole(ctx, *c.ID, userID, role)
	if err != nil || m == nil {
		return classify(err, "read %q's roles of client %q", username, clientID)
	}
	err = a.admin(ctx, func(token string) error {
		return a.gc.DeleteClientRolesFromUser(ctx, token, a.cfg.Realm, *c.ID, userID, []gocloak.Role{{ID: m.ID, Name: m.Name}})
	})
	if status(err) == http.StatusNotFound {
		return nil // the role or the user went meanwhile
	}
	if err != nil {
		return classify(err, "revoke %s/%s from %q", clientID, role, username)
	}
	a.log.Info("keycloak client role revoked", zap.String("client_id", clientID), zap.String("role", role), zap.String("username", username))
	return nil
}
