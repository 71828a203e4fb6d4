package kcemu

import (
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
)

func (s *Server) routeRoles(mux *http.ServeMux, p string) {
	mux.HandleFunc("GET "+p+"/roles", s.admin(false, anyAdmin, func(a *adminCall) (reply, bool) { return listRoles(a, ""), false }))
	mux.HandleFunc("POST "+p+"/roles", s.admin(true, manageRealm, func(a *adminCall) (reply, bool) { return createRole(a, "") }))
	mux.HandleFunc("GET "+p+"/roles/{role}", s.admin(false, viewRealm, withRealmRole(func(a *adminCall, ro *role) (reply, bool) {
		return ok(ro.out(a.rl)), false
	})))
	mux.HandleFunc("DELETE "+p+"/roles/{role}", s.admin(true, manageRealm, withRealmRole(func(a *adminCall, ro *role) (reply, bool) {
		a.rl.deleteRole(ro.ID)
		return noContent(), true
	})))
	mux.HandleFunc("GET "+p+"/roles/{role}/users", s.admin(false, and(viewRealm, queryUsers), withRealmRole(func(a *adminCall, ro *role) (reply, bool) {
		return roleMembers(a, ro), false
	})))
	mux.HandleFunc("GET "+p+"/roles-by-id/{id}", s.admin(false, anyAdmin, func(a *adminCall) (reply, bool) {
		ro := a.rl.Roles[a.r.PathValue("id")]
		if ro == nil {
			return roleNotFound, false
		}
		return ok(ro.out(a.rl)), false
	}))
}

func withRealmRole(h func(a *adminCall, ro *role) (reply, bool)) adminHandler {
	return func(a *adminCall) (reply, bool) {
		ro := a.rl.roleByName("", a.r.PathValue("role"))
		if ro == nil {
			return roleNotFound, false
		}
		return h(a, ro)
	}
}

func (s *Server) routeUsers(mux *http.ServeMux, p string) {
	u := p + "/users/{id}"
	rm := u + "/role-mappings"
	mux.HandleFunc("GET "+p+"/users", s.admin(false, queryUsers, listUsers))
	mux.HandleFunc("GET "+p+"/users/count", s.admin(false, queryUsers, countUsers))
	mux.HandleFunc("POST "+p+"/users", s.admin(true, manageUsers, createUser))
	mux.HandleFunc("GET "+u, s.admin(false, viewUsers, withUser(getUser)))
	mux.HandleFunc("PUT "+u, s.admin(true, manageUsers, withUser(updateUser)))
	mux.HandleFunc("DELETE "+u, s.admin(true, manageUsers, withUser(deleteUser)))
	mux.HandleFunc("PUT "+u+"/reset-password", s.admin(true, manageUsers, withUser(resetPassword)))
	mux.HandleFunc("GET "+rm, s.admin(false, viewUsers, withUser(allRoleMappings)))
	mux.HandleFunc("GET "+rm+"/realm", s.admin(false, viewUsers, withUser(realmMappings(false))))
	mux.HandleFunc("GET "+rm+"/realm/composite", s.admin(false, viewUsers, withUser(realmMappings(true))))
	mux.HandleFunc("POST "+rm+"/realm", s.admin(true, manageUsers, withUser(changeMappings("", true))))
	mux.HandleFunc("DELETE "+rm+"/realm", s.admin(true, manageUsers, withUser(changeMappings("", false))))
	mux.HandleFunc("GET "+rm+"/clients/{client}", s.admin(false, viewUsers, withUser(clientMappings(false))))
	mux.HandleFunc("GET "+rm+"/clients/{client}/composite", s.admin(false, viewUsers, withUser(clientMappings(true))))
	mux.HandleFunc("POST "+rm+"/clients/{client}", s.admin(true, manageUsers, withUser(changeMappings("client", true))))
	mux.HandleFunc("DELETE "+rm+"/clients/{client}", s.admin(true, manageUsers, withUser(changeMappings("client", false))))
}

// withUser resolves {id} to a user, answering 404 if unknown. A handler
// that changed something is taken to have changed the user.
func withUser(h func(a *adminCall, u *user) (reply, bool)) adminHandler {
	return func(a *adminCall) (reply, bool) {
		u := a.rl.Users[a.r.PathValue("id")]
		if u == nil {
			return userNotFound, false
		}
		rep, changed := h(a, u)
		if changed {
			a.rl.touch(kindUser, u.ID)
		}
		return rep, changed
	}
}

func userAccess(a *adminCall) map[string]bool {
	m := manageUsers(a.who)
	return map[string]bool{"manageGroupMembership": m, "resetPassword": m, "view": true,
		"mapRoles": m, "impersonate": a.who.has("impersonation"), "manage": m}
}

// matchingUsers applies GET /users' filters. username, email, firstName and
// lastName are case-insensitive substrings (exact=true: equality); search is
// a prefix over all four ("*" wildcard, "quotes" for equality). Service
// accounts are found by those four fields, as Keycloak finds them, but left
// out of a plain listing and of search=.
func matchingUsers(a *adminCall) []*user {
	q := a.r.URL.Query()
	exact := q.Get("exact") == "true"
	fields := map[string]func(*user) string{
		"username":  func(u *user) string { return u.Username },
		"email":     func(u *user) string { return u.Email },
		"firstName": func(u *user) string { return u.FirstName },
		"lastName":  func(u *user) string { return u.LastName },
	}
	byField := q.Get("search") == "" && slices.ContainsFunc([]string{"username", "email", "firstName", "lastName"},
		func(f string) bool { return q.Get(f) != "" })
	var out []*user
	for _, u := range userCandidates(a.rl, q) {
		if (u.ServiceAccountOf != "" && !byField) || !matchesSearch(u, q.Get("search")) {
			continue
		}
		if e := q.Get("enabled"); e != "" && (e == "true") != u.Enabled {
			continue
		}
		keep := true
		for name, get := range fields {
			want := strings.ToLower(q.Get(name))
			got := strings.ToLower(get(u))
			if want != "" && ((exact && got != want) || (!exact && !strings.Contains(got, want))) {
				keep = false
			}
		}
		if keep {
			out = append(out, u)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Username < out[j].Username })
	return out
}

// userCandidates narrows an exact username or email query to the user
// the index names; other queries read every user.
func userCandidates(rl *realm, q url.Values) map[string]*user {
	if q.Get("exact") != "true" || q.Get("search") != "" {
		return rl.Users
	}
	var u *user
	switch {
	case q.Get("username") != "":
		u = rl.userByUsername(q.Get("username"))
	case q.Get("email") != "":
		u = rl.userByEmail(q.Get("email"))
	default:
		return rl.Users
	}
	if u == nil {
		return nil
	}
	return map[string]*user{u.ID: u}
}

func matchesSearch(u *user, search string) bool {
	search = strings.ToLower(strings.TrimSpace(search))
	if search == "" || search == "*" {
		return true
	}
	match := func(v string) bool {
		v = strings.ToLower(v)
		if len(search) > 1 && strings.HasPrefix(search, `"`) && strings.HasSuffix(search, `"`) {
			return v == strings.Trim(search, `"`)
		}
		if strings.Contains(search, "*") {
			return wildcard(strings.TrimSuffix(search, "*")+"*", v)
		}
		return strings.HasPrefix(v, search)
	}
	return match(u.Username) || match(u.Email) || match(u.FirstName) || match(u.LastName)
}

// wildcard matches pattern with * for any run of characters.
func wildcard(pattern, v string) bool {
	parts := strings.Split(pattern, "*")
	if !strings.HasPrefix(v, parts[0]) {
		return false
	}
	v = v[len(parts[0]):]
	for _, p := range parts[1:] {
		i := strings.Index(v, p)
		if i < 0 {
			return false
		}
		v = v[i+len(p):]
	}
	return true
}

func listUsers(a *adminCall) (reply, bool) {
	out := []userOut{}
	if !viewUsers(a.who) {
		return ok(out), false // query-users opens the route and sees nothing
	}
	brief := a.r.URL.Query().Get("briefRepresentation") == "true"
	for _, u := range page(a.r, matchingUsers(a), 100) {
		o := u.out(a.rl, map[string]bool{"manage": manageUsers(a.who)})
		if brief {
			o.Access = nil
		}
		out = append(out, o)
	}
	return ok(out), false
}

func countUsers(a *adminCall) (reply, bool) { return ok(len(matchingUsers(a))), false }

func createUser(a *adminCall) (reply, bool) {
	var rep userRep
	if !a.decode(&rep) {
		return cannotParse, false
	}
	if rep.Username == nil || strings.TrimSpace(*rep.Username) == "" {
		return errMsgReply(http.StatusBadRequest, "User name is missing"), false
	}
	if a.rl.userByUsername(*rep.Username) != nil {
		return errMsgReply(http.StatusConflict, "User exists with same username"), false
	}
	if rep.Email != nil && a.rl.userByEmail(*rep.Email) != nil {
		return errMsgReply(http.StatusConflict, "User exists with same email"), false
	}
	// Keycloak creates a user disabled unless the request enables it.
	u := &user{ID: newID(), Username: strings.ToLower(strings.TrimSpace(*rep.Username)),
		CreatedTimestamp: nowMillis(), RoleIDs: map[string]bool{}}
	rep.applyTo(u)
	if err := setCredentials(u, rep.Credentials); err != nil {
		return errMsgReply(http.StatusBadRequest, err.Error()), false
	}
	if a.rl.DefaultRoleID != "" {
		u.RoleIDs[a.rl.DefaultRoleID] = true
	}
	a.rl.putUser(u)
	return created(a.realmURL() + "/users/" + u.ID), true
}

func getUser(a *adminCall, u *user) (reply, bool) { return ok(u.out(a.rl, userAccess(a))), false }

func updateUser(a *adminCall, u *user) (reply, bool) {
	var rep userRep
	if !a.decode(&rep) {
		return errMsgReply(http.StatusBadRequest, "Could not update user!"), false
	}
	// The username does not change (editUsernameAllowed is off), but a taken
	// one is still refused first.
	if rep.Username != nil {
		if other := a.rl.userByUsername(*rep.Username); other != nil && other != u {
			return errMsgReply(http.StatusConflict, "User exists with same username"), false
		}
	}
	if rep.Email != nil {
		if other := a.rl.userByEmail(*rep.Email); other != nil && other != u {
			return errMsgReply(http.StatusConflict, "User exists with same email"), false
		}
	}
	next := *u
	rep.applyTo(&next)
	if err := setCredentials(&next, rep.Credentials); err != nil {
		return errMsgReply(http.StatusBadRequest, "Could not update user!"), false
	}
	old := u.Email
	*u = next
	a.rl.changedUser(u, old)
	return noContent(), true
}

func deleteUser(a *adminCall, u *user) (reply, bool) {
	a.rl.dropUser(u)
	return noContent(), true
}

func resetPassword(a *adminCall, u *user) (reply, bool) {
	var rep credentialRep
	if !a.decode(&rep) {
		return cannotParse, false
	}
	if rep.Value == "" {
		return errReply(http.StatusBadRequest, "No password provided"), false
	}
	h, err := hashPassword(rep.Value)
	if err != nil {
		return errReply(http.StatusInternalServerError, err.Error()), false
	}
	u.Password = h
	return noContent(), true
}

// roleList renders roles sorted by name.
func roleList(rl *realm, rs []*role) []roleRep {
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	out := []roleRep{}
	for _, ro := range rs {
		out = append(out, ro.out(rl))
	}
	return out
}

// userRoles lists u's roles in one container, direct or effective.
func userRoles(rl *realm, u *user, containerID string, effective bool) []*role {
	var rs []*role
	if effective {
		for _, ro := range rl.effectiveRoles(u) {
			if ro.ClientID == containerID {
				rs = append(rs, ro)
			}
		}
		return rs
	}
	for id := range u.RoleIDs {
		if ro := rl.Roles[id]; ro != nil && ro.ClientID == containerID {
			rs = append(rs, ro)
		}
	}
	return rs
}

func allRoleMappings(a *adminCall, u *user) (reply, bool) {
	out := map[string]any{}
	if rs := userRoles(a.rl, u, "", false); len(rs) > 0 {
		out["realmMappings"] = roleList(a.rl, rs)
	}
	// Grouped from the user's own mappings: a user holds few of a realm's
	// many clients.
	byClient := map[string][]*role{}
	for id := range u.RoleIDs {
		if ro := a.rl.Roles[id]; ro != nil && ro.ClientID != "" {
			byClient[ro.ClientID] = append(byClient[ro.ClientID], ro)
		}
	}
	cm := map[string]any{}
	for id, rs := range byClient {
		if c := a.rl.Clients[id]; c != nil {
			cm[c.ClientID] = map[string]any{"id": c.ID, "client": c.ClientID, "mappings": roleList(a.rl, rs)}
		}
	}
	if len(cm) > 0 {
		out["clientMappings"] = cm
	}
	return ok(out), false
}

func realmMappings(effective bool) func(a *adminCall, u *user) (reply, bool) {
	return func(a *adminCall, u *user) (reply, bool) {
		return ok(roleList(a.rl, userRoles(a.rl, u, "", effective))), false
	}
}

func clientMappings(effective bool) func(a *adminCall, u *user) (reply, bool) {
	return func(a *adminCall, u *user) (reply, bool) {
		c := a.rl.Clients[a.r.PathValue("client")]
		if c == nil {
			return errReply(http.StatusNotFound, "Client not found"), false
		}
		return ok(roleList(a.rl, userRoles(a.rl, u, c.ID, effective))), false
	}
}

// changeMappings adds or removes role mappings. Like Keycloak, each role in
// the body must name an existing role of the container and carry its id;
// otherwise nothing changes and the answer is 404 "Role not found".
func changeMappings(kind string, add bool) func(a *adminCall, u *user) (reply, bool) {
	return func(a *adminCall, u *user) (reply, bool) {
		containerID := ""
		if kind == "client" {
			c := a.rl.Clients[a.r.PathValue("client")]
			if c == nil {
				return errReply(http.StatusNotFound, "Client not found"), false
			}
			containerID = c.ID
		}
		var reps []roleRep
		if !a.decode(&reps) {
			return cannotParse, false
		}
		var ids []string
		for _, rep := range reps {
			ro := a.rl.roleByName(containerID, rep.Name)
			if ro == nil || ro.ID != rep.ID {
				return errReply(http.StatusNotFound, "Role not found"), false
			}
			ids = append(ids, ro.ID)
		}
		for _, id := range ids {
			if add {
				a.rl.grant(u, id)
			} else {
				a.rl.ungrant(u, id)
			}
		}
		return noContent(), len(ids) > 0
	}
}
