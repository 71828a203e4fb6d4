package kcemu

import (
	"net/http"
	"net/url"
	"sort"
	"strings"
)

func (s *Server) routeClients(mux *http.ServeMux, p string) {
	c := p + "/clients/{id}"
	mux.HandleFunc("GET "+p+"/clients", s.admin(false, listClients, getClients))
	mux.HandleFunc("POST "+p+"/clients", s.admin(true, manageClients, createClient))
	mux.HandleFunc("GET "+c, s.admin(false, viewClients, withClient(getClient)))
	mux.HandleFunc("PUT "+c, s.admin(true, manageClients, withClient(updateClient)))
	mux.HandleFunc("DELETE "+c, s.admin(true, manageClients, withClient(deleteClient)))
	mux.HandleFunc("GET "+c+"/client-secret", s.admin(false, viewClients, withClient(getClientSecret)))
	mux.HandleFunc("POST "+c+"/client-secret", s.admin(true, manageClients, withClient(regenerateClientSecret)))
	mux.HandleFunc("GET "+c+"/service-account-user", s.admin(false, viewClients, withClient(getServiceAccountUser)))
	mux.HandleFunc("GET "+c+"/roles", s.admin(false, anyAdmin, withClient(listClientRoles)))
	mux.HandleFunc("POST "+c+"/roles", s.admin(true, manageClients, withClient(createClientRole)))
	mux.HandleFunc("GET "+c+"/roles/{role}", s.admin(false, viewClients, withClient(getClientRole)))
	mux.HandleFunc("DELETE "+c+"/roles/{role}", s.admin(true, manageClients, withClient(deleteClientRole)))
	mux.HandleFunc("GET "+c+"/roles/{role}/users", s.admin(false, and(viewClients, queryUsers), withClient(clientRoleUsers)))
	s.routeMappers(mux, c)
	s.routeScopeMappings(mux, c)
	s.routeClientScopes(mux, p)
}

func and(fs ...func(*caller) bool) func(*caller) bool {
	return func(c *caller) bool {
		for _, f := range fs {
			if !f(c) {
				return false
			}
		}
		return true
	}
}

// withClient resolves {id} to a client, answering Keycloak's 404 if unknown.
// A handler that changed something is taken to have changed the client.
func withClient(h func(a *adminCall, c *client) (reply, bool)) adminHandler {
	return func(a *adminCall) (reply, bool) {
		c := a.rl.Clients[a.r.PathValue("id")]
		if c == nil {
			return clientNotFound, false
		}
		rep, changed := h(a, c)
		if changed {
			a.rl.touch(kindClient, c.ID)
		}
		return rep, changed
	}
}

func clientAccess(a *adminCall) map[string]bool {
	m := manageClients(a.who)
	return map[string]bool{"view": true, "configure": m, "manage": m}
}

func getClients(a *adminCall) (reply, bool) {
	q := a.r.URL.Query()
	out := []clientOut{}
	if !viewClients(a.who) {
		return ok(out), false // query-clients opens the route but shows nothing in full
	}
	attrs := parseSearchQuery(q.Get("q"))
	if bad := unsearchable(attrs); len(bad) > 0 {
		return func(w http.ResponseWriter) {
			writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Attributes ["+strings.Join(bad, ", ")+"] not allowed for search")
		}, false
	}
	clientID, search := q.Get("clientId"), q.Get("search") == "true"
	var cs []*client
	for _, c := range clientCandidates(a.rl, clientID, search, attrs) {
		if matchClient(c, clientID, search, attrs) {
			cs = append(cs, c)
		}
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].ClientID < cs[j].ClientID })
	for _, c := range page(a.r, cs, -1) {
		out = append(out, c.out(clientAccess(a)))
	}
	return ok(out), false
}

// clientCandidates narrows an exact clientId query to the one client the
// index names; other queries read every client.
func clientCandidates(rl *realm, clientID string, search bool, attrs map[string]string) map[string]*client {
	if attrs != nil || search || clientID == "" {
		return rl.Clients
	}
	c := rl.clientByClientID(clientID)
	if c == nil {
		return nil
	}
	return map[string]*client{c.ID: c}
}

// matchClient applies Keycloak's filters: q (attributes, exact values) wins,
// then clientId, exact or (search=true) a case-insensitive substring.
func matchClient(c *client, clientID string, search bool, attrs map[string]string) bool {
	if attrs != nil {
		for k, v := range attrs {
			if c.Attributes[k] != v {
				return false
			}
		}
		return true
	}
	if clientID == "" {
		return true
	}
	if search {
		return strings.Contains(strings.ToLower(c.ClientID), strings.ToLower(clientID))
	}
	return c.ClientID == clientID
}

// searchableClientAttributes are the client attributes Keycloak 26 lets q
// search by default (JpaClientProviderFactory's REQUIRED_SEARCHABLE_ATTRIBUTES);
// others need --spi-client--jpa--searchable-attributes.
var searchableClientAttributes = map[string]bool{
	"saml_idp_initiated_sso_url_name":  true,
	"saml.artifact.binding.identifier": true,
}

// unsearchable lists, sorted, the attributes of a q that Keycloak refuses.
func unsearchable(attrs map[string]string) []string {
	var bad []string
	for k := range attrs {
		if !searchableClientAttributes[k] {
			bad = append(bad, k)
		}
	}
	sort.Strings(bad)
	return bad
}

// parseSearchQuery reads Keycloak's "key1:value1 key2:value2" q parameter.
func parseSearchQuery(q string) map[string]string {
	if strings.TrimSpace(q) == "" {
		return nil
	}
	out := map[string]string{}
	for _, part := range strings.Fields(q) {
		k, v, _ := strings.Cut(part, ":")
		out[k] = v
	}
	return out
}

func createClient(a *adminCall) (reply, bool) {
	var rep clientRep
	if !a.decode(&rep) {
		return cannotParse, false
	}
	if rep.ClientID == nil || *rep.ClientID == "" {
		return errMsgReply(http.StatusBadRequest, "Client id is missing"), false
	}
	exists := errMsgReply(http.StatusConflict, "Client "+*rep.ClientID+" already exists")
	if a.rl.clientByClientID(*rep.ClientID) != nil || (rep.ID != nil && a.rl.Clients[*rep.ID] != nil) {
		return exists, false
	}
	c := newClient(str(rep.ID), *rep.ClientID)
	rep.applyTo(c)
	if !c.PublicClient && !c.BearerOnly && c.Secret == "" {
		c.Secret = newSecret()
	}
	a.rl.putClient(c)
	if c.ServiceAccountsEnabled {
		a.rl.ensureServiceAccount(c)
	}
	return created(a.realmURL() + "/clients/" + c.ID), true
}

func getClient(a *adminCall, c *client) (reply, bool) { return ok(c.out(clientAccess(a))), false }

func updateClient(a *adminCall, c *client) (reply, bool) {
	var rep clientRep
	if !a.decode(&rep) {
		return cannotParse, false
	}
	if rep.ClientID != nil && *rep.ClientID != c.ClientID {
		if a.rl.clientByClientID(*rep.ClientID) != nil {
			return errMsgReply(http.StatusConflict, "Client "+*rep.ClientID+" already exists"), false
		}
	}
	rep.ID = nil // the path names the client; the body cannot move it
	old := c.ClientID
	rep.applyTo(c)
	a.rl.renameClient(c, old)
	if !c.PublicClient && !c.BearerOnly && c.Secret == "" {
		c.Secret = newSecret()
	}
	if c.ServiceAccountsEnabled {
		a.rl.ensureServiceAccount(c)
	}
	return noContent(), true
}

func deleteClient(a *adminCall, c *client) (reply, bool) {
	a.rl.deleteClient(c)
	return noContent(), true
}

func getClientSecret(a *adminCall, c *client) (reply, bool) {
	return ok(map[string]string{"type": "secret", "value": c.Secret}), false
}

func regenerateClientSecret(a *adminCall, c *client) (reply, bool) {
	c.Secret = newSecret()
	return ok(map[string]string{"type": "secret", "value": c.Secret}), true
}

func getServiceAccountUser(a *adminCall, c *client) (reply, bool) {
	u := a.rl.serviceAccountUser(c)
	if u == nil || !c.ServiceAccountsEnabled {
		return errReply(http.StatusBadRequest, "Service account not enabled for the client '"+c.ClientID+"'"), false
	}
	return ok(u.out(a.rl, nil)), false
}

func listClientRoles(a *adminCall, c *client) (reply, bool) { return listRoles(a, c.ID), false }

// listRoles serves a role container's listing with search, first and max.
func listRoles(a *adminCall, containerID string) reply {
	search := strings.ToLower(a.r.URL.Query().Get("search"))
	var rs []*role
	for _, ro := range a.rl.containerRoles(containerID) {
		if strings.Contains(strings.ToLower(ro.Name), search) {
			rs = append(rs, ro)
		}
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	out := []roleRep{}
	for _, ro := range page(a.r, rs, -1) {
		out = append(out, ro.out(a.rl))
	}
	return ok(out)
}

func createClientRole(a *adminCall, c *client) (reply, bool) { return createRole(a, c.ID) }

// createRole adds a realm role (containerID "") or a client role.
func createRole(a *adminCall, containerID string) (reply, bool) {
	var rep roleRep
	if !a.decode(&rep) {
		return cannotParse, false
	}
	if rep.Name == "" {
		return errMsgReply(http.StatusBadRequest, "Role name is missing"), false
	}
	if a.rl.roleByName(containerID, rep.Name) != nil {
		return errMsgReply(http.StatusConflict, "Role with name "+rep.Name+" already exists"), false
	}
	ro := &role{ID: newID(), Name: rep.Name, Description: rep.Description, ClientID: containerID, Attributes: rep.Attributes}
	a.rl.putRole(ro)
	if err := a.rl.setComposites(ro, rep.Composites); err != nil {
		a.rl.deleteRole(ro.ID)
		return errReply(http.StatusNotFound, "Could not find composite role"), false
	}
	loc := a.realmURL() + "/roles/" + url.PathEscape(ro.Name)
	if containerID != "" {
		loc = a.realmURL() + "/clients/" + containerID + "/roles/" + url.PathEscape(ro.Name)
	}
	return created(loc), true
}

func getClientRole(a *adminCall, c *client) (reply, bool) {
	ro := a.rl.roleByName(c.ID, a.r.PathValue("role"))
	if ro == nil {
		return roleNotFound, false
	}
	return ok(ro.out(a.rl)), false
}

func deleteClientRole(a *adminCall, c *client) (reply, bool) {
	ro := a.rl.roleByName(c.ID, a.r.PathValue("role"))
	if ro == nil {
		return roleNotFound, false
	}
	a.rl.deleteRole(ro.ID)
	return noContent(), true
}

func clientRoleUsers(a *adminCall, c *client) (reply, bool) {
	ro := a.rl.roleByName(c.ID, a.r.PathValue("role"))
	if ro == nil {
		return roleNotFound, false
	}
	return roleMembers(a, ro), false
}

// roleMembers lists users holding ro directly, as Keycloak's role users
// endpoint does (composites and groups do not count).
func roleMembers(a *adminCall, ro *role) reply {
	var us []*user
	for _, u := range a.rl.holders(ro.ID) {
		us = append(us, u)
	}
	sort.Slice(us, func(i, j int) bool { return us[i].Username < us[j].Username })
	out := []userOut{}
	for _, u := range page(a.r, us, 100) {
		out = append(out, u.out(a.rl, nil))
	}
	return ok(out)
}
