package kcemu

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"sort"
	"strconv"
	"time"
)

// caller is whoever presented the bearer token of an Admin REST request.
type caller struct {
	super bool            // master realm admin: may do everything
	roles map[string]bool // realm-management roles held in the target realm
}

func (c *caller) has(roles ...string) bool {
	if c.super {
		return true
	}
	for _, r := range roles {
		if c.roles[r] {
			return true
		}
	}
	return false
}

// Permission checks, mirroring Keycloak's default (non fine-grained) rules.
func anyAdmin(c *caller) bool      { return c.super || len(c.roles) > 0 }
func listClients(c *caller) bool   { return c.has("query-clients", "view-clients", "manage-clients") }
func viewClients(c *caller) bool   { return c.has("view-clients", "manage-clients") }
func manageClients(c *caller) bool { return c.has("manage-clients") }
func queryUsers(c *caller) bool    { return c.has("query-users", "view-users", "manage-users") }
func viewUsers(c *caller) bool     { return c.has("view-users", "manage-users") }
func manageUsers(c *caller) bool   { return c.has("manage-users") }
func viewRealm(c *caller) bool     { return c.has("view-realm", "manage-realm") }
func manageRealm(c *caller) bool   { return c.has("manage-realm") }
func superAdmin(c *caller) bool    { return c.super }

// reply writes a response decided under the lock. Bodies are marshalled
// while the lock is held, so nothing shared is read after it is released.
type reply func(w http.ResponseWriter)

func ok(v any) reply { return withStatus(http.StatusOK, v) }

func withStatus(status int, v any) reply {
	data, err := json.Marshal(v)
	return func(w http.ResponseWriter) {
		if err != nil {
			writeOAuthError(w, http.StatusInternalServerError, "unknown_error", err.Error())
			return
		}
		w.Header().Set("Content-Type", "application/json;charset=UTF-8")
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(status)
		_, _ = w.Write(data)
	}
}

func noContent() reply {
	return func(w http.ResponseWriter) { w.WriteHeader(http.StatusNoContent) }
}

func created(location string) reply {
	return func(w http.ResponseWriter) {
		w.Header().Set("Location", location)
		w.WriteHeader(http.StatusCreated)
	}
}

func errReply(status int, msg string) reply {
	return func(w http.ResponseWriter) { writeError(w, status, msg) }
}

func errMsgReply(status int, msg string) reply {
	return func(w http.ResponseWriter) { writeErrorMessage(w, status, msg) }
}

var (
	unauthorized = errReply(http.StatusUnauthorized, "HTTP 401 Unauthorized")
	forbidden    = errReply(http.StatusForbidden, "HTTP 403 Forbidden")
	cannotParse  = func(w http.ResponseWriter) {
		writeOAuthError(w, http.StatusBadRequest, "unknown_error", "Cannot parse the JSON")
	}
	clientNotFound = errReply(http.StatusNotFound, "Could not find client")
	userNotFound   = errReply(http.StatusNotFound, "User not found")
	roleNotFound   = errReply(http.StatusNotFound, "Could not find role")
)

// adminCall is one authorised Admin REST request.
type adminCall struct {
	r    *http.Request
	st   *state
	rl   *realm // target realm; nil on /admin/realms itself
	who  *caller
	base string
	body []byte
}

func (a *adminCall) decode(v any) bool { return json.Unmarshal(a.body, v) == nil }

func (a *adminCall) realmURL() string { return a.base + "/admin/realms/" + a.rl.Name }

// adminHandler is the signature of an Admin REST endpoint. changed reports
// whether the state was modified and must be persisted.
type adminHandler func(a *adminCall) (rep reply, changed bool)

// admin wraps an endpoint with Keycloak's bearer authentication, realm
// resolution and permission check.
func (s *Server) admin(write bool, perm func(*caller) bool, h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			cannotParse(w)
			return
		}
		var rep reply
		run := func(st *state) bool {
			a, denied := s.authorize(st, r, perm)
			if denied != nil {
				rep = denied
				return false
			}
			a.body = body
			var changed bool
			rep, changed = h(a)
			return changed
		}
		if !write {
			s.mu.RLock()
			run(s.st)
			s.mu.RUnlock()
			rep(w)
			return
		}
		err = s.update(func(st *state) error {
			if !run(st) {
				return errNoChange
			}
			return nil
		})
		if err != nil && !errors.Is(err, errNoChange) {
			writeOAuthError(w, http.StatusInternalServerError, "unknown_error", err.Error())
			return
		}
		rep(w)
	}
}

// authorize authenticates the bearer token and checks the caller may use
// perm on the path's realm: 401, then 404 for an unknown realm, then 403.
func (s *Server) authorize(st *state, r *http.Request, perm func(*caller) bool) (*adminCall, reply) {
	tok := bearer(r)
	if tok == "" {
		return nil, unauthorized
	}
	name, err := tokenIssuerRealm(tok)
	tr := st.Realms[name]
	if err != nil || tr == nil {
		return nil, unauthorized
	}
	c, err := verifyToken(tr, issuerOf(r, tr.Name), tok, "Bearer", time.Now())
	if err != nil {
		return nil, unauthorized
	}
	sub, _ := c["sub"].(string)
	u := tr.Users[sub]
	if u == nil || !u.Enabled {
		return nil, unauthorized
	}
	a := &adminCall{r: r, st: st, base: baseURL(r), who: &caller{roles: map[string]bool{}}}
	a.who.super = tr.Name == masterRealm && tr.hasRealmRole(u, "admin")
	if target := r.PathValue("realm"); target != "" {
		a.rl = st.Realms[target]
		if a.rl == nil {
			return nil, errReply(http.StatusNotFound, "Realm not found.")
		}
		if tr != a.rl && tr.Name != masterRealm {
			return nil, forbidden
		}
	}
	if tr == a.rl || (a.rl == nil && tr.Name == masterRealm) {
		if rm := tr.clientByClientID(realmManagement); rm != nil {
			for _, ro := range tr.effectiveRoles(u) {
				if ro.ClientID == rm.ID {
					a.who.roles[ro.Name] = true
				}
			}
		}
	}
	if !perm(a.who) {
		return nil, forbidden
	}
	return a, nil
}

func (s *Server) routeAdmin(mux *http.ServeMux) {
	const p = "/admin/realms/{realm}"
	mux.HandleFunc("GET /admin/realms", s.admin(false, anyAdmin, listRealms))
	mux.HandleFunc("GET /admin/realms/{$}", s.admin(false, anyAdmin, listRealms)) // gocloak's GetRealms
	mux.HandleFunc("GET /admin/serverinfo", s.admin(false, anyAdmin, s.serverInfo))
	mux.HandleFunc("POST /admin/realms", s.admin(true, superAdmin, createRealm))
	mux.HandleFunc("POST /admin/realms/{$}", s.admin(true, superAdmin, createRealm))
	mux.HandleFunc("GET "+p, s.admin(false, anyAdmin, getRealm))
	mux.HandleFunc("PUT "+p, s.admin(true, manageRealm, updateRealm))
	mux.HandleFunc("DELETE "+p, s.admin(true, superAdmin, deleteRealm))
	s.routeClients(mux, p)
	s.routeRoles(mux, p)
	s.routeUsers(mux, p)
}

func realmOut(rl *realm) map[string]any {
	return map[string]any{
		"id": rl.ID, "realm": rl.Name, "displayName": rl.DisplayName, "notBefore": 0,
		"enabled": rl.Enabled, "accessTokenLifespan": rl.AccessTokenLifespan,
		"ssoSessionIdleTimeout": rl.SSOSessionIdleTimeout, "ssoSessionMaxLifespan": rl.SSOSessionMaxLifespan,
		"sslRequired": "external", "registrationAllowed": false, "duplicateEmailsAllowed": false,
		"loginWithEmailAllowed": true, "editUsernameAllowed": false,
	}
}

func listRealms(a *adminCall) (reply, bool) {
	out := []map[string]any{}
	for _, rl := range sortedRealms(a.st) {
		if a.who.super {
			out = append(out, realmOut(rl))
		}
	}
	return ok(out), false
}

func sortedRealms(st *state) []*realm {
	var rs []*realm
	for _, rl := range st.Realms {
		rs = append(rs, rl)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].Name < rs[j].Name })
	return rs
}

func getRealm(a *adminCall) (reply, bool) { return ok(realmOut(a.rl)), false }

// realmSettings are what PUT /admin/realms/{realm} changes here; a field
// left out keeps its value, as in Keycloak. Renaming a realm is not modelled.
type realmSettings struct {
	DisplayName           *string `json:"displayName"`
	Enabled               *bool   `json:"enabled"`
	AccessTokenLifespan   *int    `json:"accessTokenLifespan"`
	SSOSessionIdleTimeout *int    `json:"ssoSessionIdleTimeout"`
	SSOSessionMaxLifespan *int    `json:"ssoSessionMaxLifespan"`
}

func updateRealm(a *adminCall) (reply, bool) {
	var rep realmSettings
	if !a.decode(&rep) {
		return cannotParse, false
	}
	if rep.DisplayName != nil {
		a.rl.DisplayName = *rep.DisplayName
	}
	if rep.Enabled != nil {
		a.rl.Enabled = *rep.Enabled
	}
	setInt(&a.rl.AccessTokenLifespan, rep.AccessTokenLifespan)
	setInt(&a.rl.SSOSessionIdleTimeout, rep.SSOSessionIdleTimeout)
	setInt(&a.rl.SSOSessionMaxLifespan, rep.SSOSessionMaxLifespan)
	a.rl.touch(kindSettings, "")
	return noContent(), true
}

func createRealm(a *adminCall) (reply, bool) {
	ex, err := parseRealmExport(a.body, "request body")
	if err != nil {
		return errMsgReply(http.StatusBadRequest, err.Error()), false
	}
	if a.st.Realms[*ex.Realm] != nil {
		return errMsgReply(http.StatusConflict, "Conflict detected. See logs for details"), false
	}
	rl, err := buildRealm(ex)
	if err != nil {
		return errMsgReply(http.StatusBadRequest, err.Error()), false
	}
	a.st.Realms[rl.Name] = rl
	a.st.touchRealm(rl.Name)
	return created(a.base + "/admin/realms/" + rl.Name), true
}

func deleteRealm(a *adminCall) (reply, bool) {
	if a.rl.Name == masterRealm {
		return errMsgReply(http.StatusBadRequest, "Cannot delete the master realm"), false
	}
	delete(a.st.Realms, a.rl.Name)
	a.st.touchRealm(a.rl.Name)
	return noContent(), true
}

// page applies Keycloak's first/max query parameters; defMax < 0 means all.
func page[T any](r *http.Request, items []T, defMax int) []T {
	first, err := strconv.Atoi(r.URL.Query().Get("first"))
	if err != nil || first < 0 {
		first = 0
	}
	max, err := strconv.Atoi(r.URL.Query().Get("max"))
	if err != nil || max < 0 {
		max = defMax
	}
	if first >= len(items) {
		return []T{}
	}
	items = items[first:]
	if max >= 0 && max < len(items) {
		items = items[:max]
	}
	return items
}

// serverInfo answers the part of Keycloak's server info that clients read
// to tell releases apart: systemInfo.version.
func (s *Server) serverInfo(*adminCall) (reply, bool) {
	return ok(map[string]any{"systemInfo": map[string]any{"version": s.version + ".0"}}), false
}
