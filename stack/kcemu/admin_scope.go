package kcemu

import (
	"net/http"
	"slices"
)

// routeScopeMappings serves a client's role scope mappings
// (.../scope-mappings): the roles its tokens may carry when its
// fullScopeAllowed is off. Realm roles are named by id, client roles by
// name, as Keycloak reads them; an unknown one is 404 "Role not found" and
// changes nothing.
func (s *Server) routeScopeMappings(mux *http.ServeMux, c string) {
	sm := c + "/scope-mappings"
	mux.HandleFunc("GET "+sm, s.admin(false, viewClients, withClient(allScopeMappings)))
	mux.HandleFunc("GET "+sm+"/realm", s.admin(false, viewClients, withClient(scopeMappings(false))))
	mux.HandleFunc("POST "+sm+"/realm", s.admin(true, manageClients, withClient(changeScope(false, true))))
	mux.HandleFunc("DELETE "+sm+"/realm", s.admin(true, manageClients, withClient(changeScope(false, false))))
	mux.HandleFunc("GET "+sm+"/clients/{client}", s.admin(false, viewClients, withClient(scopeMappings(true))))
	mux.HandleFunc("POST "+sm+"/clients/{client}", s.admin(true, manageClients, withClient(changeScope(true, true))))
	mux.HandleFunc("DELETE "+sm+"/clients/{client}", s.admin(true, manageClients, withClient(changeScope(true, false))))
}

// scopeRoles lists the roles of one container (realm: "") in c's scope.
// A deleted role's id may linger in the list; it is skipped here and in
// tokens, so deleting a role need not visit every client.
func scopeRoles(rl *realm, c *client, containerID string) []*role {
	var rs []*role
	for _, id := range c.ScopeRoleIDs {
		if ro := rl.Roles[id]; ro != nil && ro.ClientID == containerID {
			rs = append(rs, ro)
		}
	}
	return rs
}

func allScopeMappings(a *adminCall, c *client) (reply, bool) {
	out := map[string]any{}
	if rs := scopeRoles(a.rl, c, ""); len(rs) > 0 {
		out["realmMappings"] = roleList(a.rl, rs)
	}
	byClient := map[string][]*role{}
	for _, id := range c.ScopeRoleIDs {
		if ro := a.rl.Roles[id]; ro != nil && ro.ClientID != "" {
			byClient[ro.ClientID] = append(byClient[ro.ClientID], ro)
		}
	}
	cm := map[string]any{}
	for id, rs := range byClient {
		if sc := a.rl.Clients[id]; sc != nil {
			cm[sc.ClientID] = map[string]any{"id": sc.ID, "client": sc.ClientID, "mappings": roleList(a.rl, rs)}
		}
	}
	if len(cm) > 0 {
		out["clientMappings"] = cm
	}
	return ok(out), false
}

func scopeMappings(ofClient bool) func(a *adminCall, c *client) (reply, bool) {
	return func(a *adminCall, c *client) (reply, bool) {
		containerID, found := scopeContainer(a, ofClient)
		if !found {
			return clientNotFound, false
		}
		return ok(roleList(a.rl, scopeRoles(a.rl, c, containerID))), false
	}
}

// scopeContainer is the id of the client whose roles a scope-mapping
// path names, or "" for the realm's roles; false when no such client.
func scopeContainer(a *adminCall, ofClient bool) (string, bool) {
	if !ofClient {
		return "", true
	}
	sc := a.rl.Clients[a.r.PathValue("client")]
	if sc == nil {
		return "", false
	}
	return sc.ID, true
}

func changeScope(ofClient, add bool) func(a *adminCall, c *client) (reply, bool) {
	return func(a *adminCall, c *client) (reply, bool) {
		containerID, found := scopeContainer(a, ofClient)
		if !found {
			return clientNotFound, false
		}
		var reps []roleRep
		if !a.decode(&reps) {
			return cannotParse, false
		}
		var ids []string
		for _, rep := range reps {
			var ro *role
			if ofClient {
				ro = a.rl.roleByName(containerID, rep.Name)
			} else if r := a.rl.Roles[rep.ID]; r != nil && r.ClientID == "" {
				ro = r
			}
			if ro == nil {
				return errReply(http.StatusNotFound, "Role not found"), false
			}
			ids = append(ids, ro.ID)
		}
		c.ScopeRoleIDs = changeRoleIDs(c.ScopeRoleIDs, ids, add)
		return noContent(), len(ids) > 0
	}
}

// changeRoleIDs adds ids to a scope's roles, once each, or takes them away.
func changeRoleIDs(have, ids []string, add bool) []string {
	for _, id := range ids {
		have = slices.DeleteFunc(have, func(x string) bool { return x == id })
		if add {
			have = append(have, id)
		}
	}
	return have
}

// inScope is what a token of c may carry of the user's roles: everything
// with fullScopeAllowed, else c's own roles, its scope mapping and those of
// the client scopes granted, with their composites expanded (Keycloak's
// TokenManager.getAccess).
func (r *realm) inScope(c *client, scopes []*clientScope) func(*role) bool {
	if c.FullScopeAllowed {
		return func(*role) bool { return true }
	}
	allowed := map[string]bool{}
	var walk func(id string)
	walk = func(id string) {
		ro := r.Roles[id]
		if ro == nil || allowed[id] {
			return
		}
		allowed[id] = true
		for _, comp := range ro.Composites {
			walk(comp)
		}
	}
	for _, ro := range r.containerRoles(c.ID) {
		walk(ro.ID)
	}
	for _, id := range c.ScopeRoleIDs {
		walk(id)
	}
	for _, sc := range scopes {
		for _, id := range sc.ScopeRoleIDs {
			walk(id)
		}
	}
	return func(ro *role) bool { return allowed[ro.ID] }
}
