package kcemu

import (
	"maps"
	"net/http"
	"slices"
	"strings"
)

// clientScope is a realm's client scope of its own making: a name a token
// request may ask for in its scope parameter (when a client has it among
// its optional scopes), bringing the roles of its scope mapping into the
// token. Keycloak's built-in scopes (profile, email, roles ...) are not
// stored: the token endpoint knows them by name.
type clientScope struct {
	ID           string            `json:"id"`
	Name         string            `json:"name"`
	Description  string            `json:"description,omitempty"`
	Protocol     string            `json:"protocol,omitempty"`
	Attributes   map[string]string `json:"attributes,omitempty"`
	ScopeRoleIDs []string          `json:"scopeRoleIds,omitempty"`
	// OptionalOn are the clients (internal ids) that have this scope among
	// their optional scopes. Kept here rather than on the clients, so that
	// a sign-in client with thousands of workspace scopes is not rewritten
	// whole, in the change log, for each one added.
	OptionalOn []string `json:"optionalOn,omitempty"`
}

var scopeNotFound = errReply(http.StatusNotFound, "Could not find client scope")

// routeClientScopes serves client scopes, their client-role scope
// mappings and clients' optional scopes, as far as a per-workspace scope
// requested on demand needs them. A client scope's id or name taken is 409
// "Client Scope <name> already exists". Deleting a scope takes it off
// every client; a deleted client's id may linger in a scope's OptionalOn
// (ids are never reused).
func (s *Server) routeClientScopes(mux *http.ServeMux, p string) {
	cs := p + "/client-scopes"
	mux.HandleFunc("POST "+cs, s.admin(true, manageClients, createClientScope))
	mux.HandleFunc("GET "+cs, s.admin(false, viewClients, listClientScopes))
	mux.HandleFunc("GET "+cs+"/{scope}", s.admin(false, viewClients, withScope(getClientScope)))
	mux.HandleFunc("DELETE "+cs+"/{scope}", s.admin(true, manageClients, withScope(deleteClientScope)))
	sm := cs + "/{scope}/scope-mappings/clients/{client}"
	mux.HandleFunc("GET "+sm, s.admin(false, viewClients, withScope(scopeClientRoles)))
	mux.HandleFunc("POST "+sm, s.admin(true, manageClients, withScope(changeScopeClientRoles(true))))
	mux.HandleFunc("DELETE "+sm, s.admin(true, manageClients, withScope(changeScopeClientRoles(false))))
	opt := p + "/clients/{id}/optional-client-scopes/{scope}"
	mux.HandleFunc("PUT "+opt, s.admin(true, manageClients, optionalScope(true)))
	mux.HandleFunc("DELETE "+opt, s.admin(true, manageClients, optionalScope(false)))
}

func withScope(h func(a *adminCall, sc *clientScope) (reply, bool)) adminHandler {
	return func(a *adminCall) (reply, bool) {
		sc := a.rl.ClientScopes[a.r.PathValue("scope")]
		if sc == nil {
			return scopeNotFound, false
		}
		rep, changed := h(a, sc)
		if changed {
			a.rl.touch(kindClientScope, sc.ID)
		}
		return rep, changed
	}
}

func (r *realm) scopeByName(name string) *clientScope {
	for _, sc := range r.ClientScopes {
		if sc.Name == name {
			return sc
		}
	}
	return nil
}

func createClientScope(a *adminCall) (reply, bool) {
	var sc clientScope
	if !a.decode(&sc) || sc.Name == "" {
		return cannotParse, false
	}
	if a.rl.ClientScopes[sc.ID] != nil || a.rl.scopeByName(sc.Name) != nil || builtinScope(sc.Name) {
		return errMsgReply(http.StatusConflict, "Client Scope "+sc.Name+" already exists"), false
	}
	if sc.ID == "" {
		sc.ID = newID()
	}
	if sc.Protocol == "" {
		sc.Protocol = "openid-connect"
	}
	sc.ScopeRoleIDs = nil
	a.rl.ClientScopes[sc.ID] = &sc
	a.rl.touch(kindClientScope, sc.ID)
	return created(a.realmURL() + "/client-scopes/" + sc.ID), true
}

// listClientScopes lists the scopes made through the admin API, sorted by
// name; the emulator's realms have none of Keycloak's built-in ones.
func listClientScopes(a *adminCall) (reply, bool) {
	scopes := slices.SortedFunc(maps.Values(a.rl.ClientScopes), func(x, y *clientScope) int { return strings.Compare(x.Name, y.Name) })
	out := make([]map[string]any, 0, len(scopes))
	for _, sc := range scopes {
		out = append(out, scopeRep(sc))
	}
	return ok(out), false
}

func getClientScope(_ *adminCall, sc *clientScope) (reply, bool) { return ok(scopeRep(sc)), false }

func scopeRep(sc *clientScope) map[string]any {
	out := map[string]any{"id": sc.ID, "name": sc.Name, "protocol": sc.Protocol, "attributes": sc.Attributes}
	if sc.Description != "" {
		out["description"] = sc.Description
	}
	if sc.Attributes == nil {
		out["attributes"] = map[string]string{}
	}
	return out
}

func deleteClientScope(a *adminCall, sc *clientScope) (reply, bool) {
	delete(a.rl.ClientScopes, sc.ID)
	return noContent(), true
}

func scopeClientRoles(a *adminCall, sc *clientScope) (reply, bool) {
	c := a.rl.Clients[a.r.PathValue("client")]
	if c == nil {
		return clientNotFound, false
	}
	var rs []*role
	for _, id := range sc.ScopeRoleIDs {
		if ro := a.rl.Roles[id]; ro != nil && ro.ClientID == c.ID {
			rs = append(rs, ro)
		}
	}
	return ok(roleList(a.rl, rs)), false
}

// changeScopeClientRoles names the client's roles by name, as Keycloak
// reads them; an unknown one is 404 and changes nothing.
func changeScopeClientRoles(add bool) func(a *adminCall, sc *clientScope) (reply, bool) {
	return func(a *adminCall, sc *clientScope) (reply, bool) {
		c := a.rl.Clients[a.r.PathValue("client")]
		if c == nil {
			return clientNotFound, false
		}
		var reps []roleRep
		if !a.decode(&reps) {
			return cannotParse, false
		}
		var ids []string
		for _, rep := range reps {
			ro := a.rl.roleByName(c.ID, rep.Name)
			if ro == nil {
				return errReply(http.StatusNotFound, "Role not found"), false
			}
			ids = append(ids, ro.ID)
		}
		sc.ScopeRoleIDs = changeRoleIDs(sc.ScopeRoleIDs, ids, add)
		return noContent(), len(ids) > 0
	}
}

func optionalScope(add bool) adminHandler {
	return func(a *adminCall) (reply, bool) {
		c := a.rl.Clients[a.r.PathValue("id")]
		if c == nil {
			return clientNotFound, false
		}
		sc := a.rl.ClientScopes[a.r.PathValue("scope")]
		if sc == nil {
			return errReply(http.StatusNotFound, "Client scope not found"), false
		}
		sc.OptionalOn = slices.DeleteFunc(sc.OptionalOn, func(x string) bool { return x == c.ID })
		if add {
			sc.OptionalOn = append(sc.OptionalOn, c.ID)
		}
		a.rl.touch(kindClientScope, sc.ID)
		return noContent(), true
	}
}

// Keycloak's built-in client scopes: the default ones every client has,
// and the optional ones a token request may ask for.
var (
	defaultScopes  = []string{"acr", "basic", "email", "profile", "roles", "web-origins"}
	optionalScopes = []string{"address", "microprofile-jwt", "offline_access", "organization", "phone"}
)

func builtinScope(name string) bool {
	return name == "openid" || slices.Contains(defaultScopes, name) || slices.Contains(optionalScopes, name)
}

// requestedScopes resolves a token request's scope parameter for c: the
// granted scope string (openid if asked, the optional scopes asked for,
// profile and email), whether openid was asked, and the
// client scopes of the realm's own that were; ok is false when a name is
// neither built in nor among c's optional scopes (invalid_scope).
func requestedScopes(r *realm, c *client, requested string) (granted string, openid bool, own []*clientScope, ok bool) {
	ok = true
	var optional []string
	for _, name := range strings.Fields(requested) {
		switch {
		case name == "openid":
			openid = true
		case slices.Contains(defaultScopes, name):
		case slices.Contains(optionalScopes, name):
			optional = appendUnique(optional, name)
		default:
			sc := r.scopeByName(name)
			if sc == nil || !slices.Contains(sc.OptionalOn, c.ID) {
				ok = false
				continue
			}
			if !slices.Contains(own, sc) {
				own = append(own, sc)
				optional = append(optional, name)
			}
		}
	}
	var out []string
	if openid {
		out = append(out, "openid")
	}
	out = append(append(out, optional...), "profile", "email")
	return strings.Join(out, " "), openid, own, ok
}
