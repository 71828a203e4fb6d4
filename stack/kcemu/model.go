package kcemu

import (
	"crypto/rand"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Names Keycloak gives built-in clients and roles.
const (
	realmManagement = "realm-management"
	accountClient   = "account"
	adminCLI        = "admin-cli"
	masterRealm     = "master"
	saPrefix        = "service-account-"
	lightweightAttr = "client.use.lightweight.access.token.enabled"
)

// realmManagementRoles are the client roles Keycloak creates in every realm's
// realm-management client, with the composites it gives them.
var realmManagementRoles = map[string][]string{
	"create-client": nil, "impersonation": nil, "manage-authorization": nil,
	"manage-clients": nil, "manage-events": nil, "manage-identity-providers": nil,
	"manage-realm": nil, "manage-users": nil, "query-clients": nil, "query-groups": nil,
	"query-realms": nil, "query-users": nil, "view-authorization": nil,
	"view-clients": {"query-clients"}, "view-events": nil, "view-identity-providers": nil,
	"view-realm": nil, "view-users": {"query-users", "query-groups"},
	"realm-admin": nil, // composite of all the others, filled in below
}

func newID() string { return uuid.NewString() }

func nowMillis() int64 { return time.Now().UnixMilli() }

// newSecret is a 32-character client secret, Keycloak's length.
func newSecret() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

func (r *realm) clientByClientID(clientID string) *client { return r.idx.clients[clientID] }

func (r *realm) userByUsername(username string) *user {
	return r.idx.usernames[strings.ToLower(username)]
}

func (r *realm) userByEmail(email string) *user {
	if email == "" {
		return nil
	}
	return r.idx.emails[strings.ToLower(email)]
}

func (r *realm) serviceAccountUser(c *client) *user { return r.idx.accounts[c.ID] }

// roleByName finds a realm role (clientInternalID "") or a client role.
func (r *realm) roleByName(clientInternalID, name string) *role {
	return r.idx.roles[clientInternalID][name]
}

// ensureRole returns the named role, creating it when missing, which is what
// Keycloak's importer does for roles a user mapping names.
func (r *realm) ensureRole(clientInternalID, name string) *role {
	if ro := r.roleByName(clientInternalID, name); ro != nil {
		return ro
	}
	ro := &role{ID: newID(), Name: name, ClientID: clientInternalID}
	r.putRole(ro)
	return ro
}

// effectiveRoles expands a user's direct mappings through composites.
func (r *realm) effectiveRoles(u *user) map[string]*role {
	out := map[string]*role{}
	var walk func(id string)
	walk = func(id string) {
		ro, ok := r.Roles[id]
		if !ok || out[id] != nil {
			return
		}
		out[id] = ro
		for _, c := range ro.Composites {
			walk(c)
		}
	}
	for id := range u.RoleIDs {
		walk(id)
	}
	return out
}

// hasClientRole reports whether u effectively holds clientID's role name.
func (r *realm) hasClientRole(u *user, clientID, name string) bool {
	c := r.clientByClientID(clientID)
	if c == nil {
		return false
	}
	for _, ro := range r.effectiveRoles(u) {
		if ro.ClientID == c.ID && ro.Name == name {
			return true
		}
	}
	return false
}

func (r *realm) hasRealmRole(u *user, name string) bool {
	for _, ro := range r.effectiveRoles(u) {
		if ro.ClientID == "" && ro.Name == name {
			return true
		}
	}
	return false
}

// deleteRole removes a role and every reference to it.
func (r *realm) deleteRole(id string) {
	for _, u := range r.holders(id) {
		r.ungrant(u, id)
	}
	for _, p := range r.idx.parents[id] {
		r.removeComposite(p, id)
	}
	if ro := r.Roles[id]; ro != nil {
		r.dropRole(ro)
	}
}

// deleteClient removes a client, its roles and its service-account user.
func (r *realm) deleteClient(c *client) {
	for _, ro := range r.containerRoles(c.ID) {
		r.deleteRole(ro.ID)
	}
	if sa := r.serviceAccountUser(c); sa != nil {
		r.dropUser(sa)
	}
	r.dropClient(c)
}

// ensureServiceAccount creates the service-account user Keycloak makes for a
// client with service accounts enabled.
func (r *realm) ensureServiceAccount(c *client) *user {
	if u := r.serviceAccountUser(c); u != nil {
		return u
	}
	u := &user{
		ID: newID(), Username: strings.ToLower(saPrefix + c.ClientID), Enabled: true,
		CreatedTimestamp: nowMillis(), ServiceAccountOf: c.ID, RoleIDs: map[string]bool{},
	}
	if r.DefaultRoleID != "" {
		u.RoleIDs[r.DefaultRoleID] = true
	}
	r.putUser(u)
	return u
}

// newClient applies Keycloak's defaults for a client being created.
func newClient(id, clientID string) *client {
	if id == "" {
		id = newID()
	}
	return &client{
		ID: id, ClientID: clientID, Enabled: true, StandardFlowEnabled: true,
		FullScopeAllowed: true, Protocol: "openid-connect", RedirectURIs: []string{},
		WebOrigins: []string{}, Attributes: map[string]string{},
	}
}

// ensureDefaults adds what Keycloak always creates in a realm: the
// realm-management and account clients with their roles, offline_access,
// uma_authorization and the default-roles composite. Service-account users
// are left to the caller, which may be about to import them.
func (r *realm) ensureDefaults() {
	r.ensureMaps()
	rm := r.clientByClientID(realmManagement)
	if rm == nil {
		rm = newClient("", realmManagement)
		rm.BearerOnly = true
		rm.Name = "${client_realm-management}"
		r.putClient(rm)
	}
	var all []string
	for name, comps := range realmManagementRoles {
		ro := r.ensureRole(rm.ID, name)
		for _, c := range comps {
			r.addComposite(ro, r.ensureRole(rm.ID, c).ID)
		}
		if name != "realm-admin" {
			all = append(all, ro.ID)
		}
	}
	admin := r.roleByName(rm.ID, "realm-admin")
	sort.Strings(all)
	for _, id := range all {
		r.addComposite(admin, id)
	}

	acc := r.clientByClientID(accountClient)
	if acc == nil {
		acc = newClient("", accountClient)
		acc.PublicClient = true
		acc.Name = "${client_account}"
		acc.BaseURL = "/realms/" + r.Name + "/account/"
		r.putClient(acc)
	}
	manage := r.ensureRole(acc.ID, "manage-account")
	r.addComposite(manage, r.ensureRole(acc.ID, "manage-account-links").ID)
	view := r.ensureRole(acc.ID, "view-profile")

	offline := r.ensureRole("", "offline_access")
	uma := r.ensureRole("", "uma_authorization")
	if r.DefaultRoleID == "" || r.Roles[r.DefaultRoleID] == nil {
		def := r.ensureRole("", "default-roles-"+strings.ToLower(r.Name))
		def.Description = "${role_default-roles}"
		for _, id := range []string{offline.ID, uma.ID, manage.ID, view.ID} {
			r.addComposite(def, id)
		}
		r.DefaultRoleID = def.ID
	}
}

func appendUnique(ids []string, id string) []string {
	for _, x := range ids {
		if x == id {
			return ids
		}
	}
	return append(ids, id)
}

// newRealm makes an empty realm with Keycloak's default lifespans and keys.
func newRealm(name string) (*realm, error) {
	r := &realm{
		ID: newID(), Name: name, Enabled: true,
		AccessTokenLifespan: 300, SSOSessionIdleTimeout: 1800, SSOSessionMaxLifespan: 36000,
	}
	r.ensureMaps()
	r.reindex()
	if err := r.newKeys(); err != nil {
		return nil, err
	}
	return r, nil
}
