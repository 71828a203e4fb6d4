package kcemu

import (
	"slices"
	"strings"
)

// index holds a realm's lookups by something other than id, so a call
// costs the same in a realm of ten clients and of ten thousand. Every
// insertion and removal goes through the realm's put and drop methods,
// which keep it current and note the change for the log.
type index struct {
	clients   map[string]*client          // by clientId
	usernames map[string]*user            // by lower-case username
	emails    map[string]*user            // by lower-case email
	accounts  map[string]*user            // service-account user by internal client id
	roles     map[string]map[string]*role // by container ("" = realm) then name
	holders   map[string]map[string]*user // by role id, then user id: direct mappings
	parents   map[string]map[string]*role // by role id, then id of a role including it
}

// reindex rebuilds the lookups from the maps, after a load or a replay
// that replaced them.
func (r *realm) reindex() {
	r.idx = index{clients: map[string]*client{}, usernames: map[string]*user{},
		emails: map[string]*user{}, accounts: map[string]*user{}, roles: map[string]map[string]*role{},
		holders: map[string]map[string]*user{}, parents: map[string]map[string]*role{}}
	for _, c := range r.Clients {
		r.idx.clients[c.ClientID] = c
	}
	for _, u := range r.Users {
		r.indexUser(u)
	}
	for _, ro := range r.Roles {
		r.indexRole(ro)
	}
}

func (r *realm) indexUser(u *user) {
	r.idx.usernames[strings.ToLower(u.Username)] = u
	if u.Email != "" {
		r.idx.emails[strings.ToLower(u.Email)] = u
	}
	if u.ServiceAccountOf != "" {
		r.idx.accounts[u.ServiceAccountOf] = u
	}
	for id := range u.RoleIDs {
		link(r.idx.holders, id, u.ID, u)
	}
}

// unindexUser forgets u under the keys it was indexed with; a key since
// taken by another user is left to that user.
func (r *realm) unindexUser(u *user) {
	forget(r.idx.usernames, strings.ToLower(u.Username), u)
	forget(r.idx.emails, strings.ToLower(u.Email), u)
	forget(r.idx.accounts, u.ServiceAccountOf, u)
	for id := range u.RoleIDs {
		unlink(r.idx.holders, id, u.ID)
	}
}

func (r *realm) indexRole(ro *role) {
	byName := r.idx.roles[ro.ClientID]
	if byName == nil {
		byName = map[string]*role{}
		r.idx.roles[ro.ClientID] = byName
	}
	byName[ro.Name] = ro
	for _, id := range ro.Composites {
		link(r.idx.parents, id, ro.ID, ro)
	}
}

// link and unlink keep a two-level index, dropping emptied inner maps.
func link[T any](m map[string]map[string]T, outer, inner string, v T) {
	if m[outer] == nil {
		m[outer] = map[string]T{}
	}
	m[outer][inner] = v
}

func unlink[T any](m map[string]map[string]T, outer, inner string) {
	delete(m[outer], inner)
	if len(m[outer]) == 0 {
		delete(m, outer)
	}
}

func forget[T comparable](m map[string]T, key string, v T) {
	if m[key] == v {
		delete(m, key)
	}
}

// putClient adds c or replaces the client with its id.
func (r *realm) putClient(c *client) {
	if old := r.Clients[c.ID]; old != nil {
		forget(r.idx.clients, old.ClientID, old)
	}
	r.Clients[c.ID] = c
	r.idx.clients[c.ClientID] = c
	r.touch(kindClient, c.ID)
}

// renameClient re-indexes c after its clientId changed from old.
func (r *realm) renameClient(c *client, old string) {
	forget(r.idx.clients, old, c)
	r.idx.clients[c.ClientID] = c
}

func (r *realm) dropClient(c *client) {
	forget(r.idx.clients, c.ClientID, c)
	delete(r.Clients, c.ID)
	r.touch(kindClient, c.ID)
}

// putUser adds u or replaces the user with its id.
func (r *realm) putUser(u *user) {
	if old := r.Users[u.ID]; old != nil {
		r.unindexUser(old)
	}
	r.Users[u.ID] = u
	r.indexUser(u)
	r.touch(kindUser, u.ID)
}

// changedUser re-indexes u after an update that may have changed its
// email, given as it was before, and notes it for the log.
func (r *realm) changedUser(u *user, oldEmail string) {
	forget(r.idx.emails, strings.ToLower(oldEmail), u)
	r.indexUser(u)
	r.touch(kindUser, u.ID)
}

func (r *realm) dropUser(u *user) {
	r.unindexUser(u)
	delete(r.Users, u.ID)
	r.touch(kindUser, u.ID)
}

// putRole adds ro or replaces the role with its id.
func (r *realm) putRole(ro *role) {
	if old := r.Roles[ro.ID]; old != nil {
		r.unindexRole(old)
	}
	r.Roles[ro.ID] = ro
	r.indexRole(ro)
	r.touch(kindRole, ro.ID)
}

func (r *realm) unindexRole(ro *role) {
	if byName := r.idx.roles[ro.ClientID]; byName != nil {
		forget(byName, ro.Name, ro)
		if len(byName) == 0 {
			delete(r.idx.roles, ro.ClientID)
		}
	}
	for _, id := range ro.Composites {
		unlink(r.idx.parents, id, ro.ID)
	}
}

func (r *realm) dropRole(ro *role) {
	r.unindexRole(ro)
	delete(r.Roles, ro.ID)
	r.touch(kindRole, ro.ID)
}

// grant maps u to a role directly; ungrant removes the mapping.
func (r *realm) grant(u *user, roleID string) {
	u.RoleIDs[roleID] = true
	link(r.idx.holders, roleID, u.ID, u)
	r.touch(kindUser, u.ID)
}

func (r *realm) ungrant(u *user, roleID string) {
	delete(u.RoleIDs, roleID)
	unlink(r.idx.holders, roleID, u.ID)
	r.touch(kindUser, u.ID)
}

// addComposite makes ro include the role id; removeComposite undoes it.
func (r *realm) addComposite(ro *role, id string) {
	ro.Composites = appendUnique(ro.Composites, id)
	link(r.idx.parents, id, ro.ID, ro)
	r.touch(kindRole, ro.ID)
}

func (r *realm) removeComposite(ro *role, id string) {
	ro.Composites = slices.DeleteFunc(ro.Composites, func(x string) bool { return x == id })
	unlink(r.idx.parents, id, ro.ID)
	r.touch(kindRole, ro.ID)
}

// holders are the users mapped to a role directly.
func (r *realm) holders(roleID string) map[string]*user { return r.idx.holders[roleID] }

// containerRoles are the roles of one container ("" = the realm's).
func (r *realm) containerRoles(containerID string) map[string]*role {
	return r.idx.roles[containerID]
}
