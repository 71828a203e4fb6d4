package kcemu

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
)

func (s *Server) routeOIDC(mux *http.ServeMux) {
	mux.HandleFunc("GET /realms/{realm}", s.realmInfo)
	mux.HandleFunc("GET /realms/{realm}/.well-known/openid-configuration", s.discovery)
	mux.HandleFunc("GET /realms/{realm}/protocol/openid-connect/certs", s.certs)
	mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/token", s.token)
	mux.HandleFunc("GET /realms/{realm}/protocol/openid-connect/userinfo", s.userinfo)
	mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/userinfo", s.userinfo)
	mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/logout", s.logout)
	mux.HandleFunc("GET /realms/{realm}/protocol/openid-connect/logout", s.browserLogout)
	mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/token/introspect", s.introspect)
	mux.HandleFunc("GET /realms/{realm}/protocol/openid-connect/auth", s.authorization)
	mux.HandleFunc("POST /realms/{realm}/login-actions/authenticate", s.loginAction)
	mux.HandleFunc("POST /realms/{realm}/protocol/openid-connect/revoke", s.revoke)
	for _, ep := range []string{"token", "logout", "userinfo", "revoke", "token/introspect"} {
		mux.HandleFunc("OPTIONS /realms/{realm}/protocol/openid-connect/"+ep, corsPreflight)
	}
}

// baseURL is the URL the client used to reach us; Keycloak in dev mode
// derives its issuer from the request the same way.
func baseURL(r *http.Request) string { return "http://" + r.Host }

func issuerOf(r *http.Request, realmName string) string {
	return baseURL(r) + "/realms/" + realmName
}

// oidcRealm looks up the path's realm under the read lock held by the caller.
func (s *Server) oidcRealm(w http.ResponseWriter, r *http.Request) *realm {
	rl := s.st.Realms[r.PathValue("realm")]
	if rl == nil || !rl.Enabled {
		writeError(w, http.StatusNotFound, "Realm does not exist")
		return nil
	}
	return rl
}

func (s *Server) realmInfo(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rl := s.oidcRealm(w, r)
	if rl == nil {
		return
	}
	iss := issuerOf(r, rl.Name)
	writeJSON(w, http.StatusOK, map[string]any{
		"realm": rl.Name, "public_key": publicKeyBase64(rl), "token-service": iss + "/protocol/openid-connect",
		"account-service": iss + "/account", "tokens-not-before": 0,
	})
}

func (s *Server) discovery(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	rl := s.oidcRealm(w, r)
	s.mu.RUnlock()
	if rl == nil {
		return
	}
	iss := issuerOf(r, rl.Name)
	p := iss + "/protocol/openid-connect"
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                iss,
		"authorization_endpoint":                p + "/auth",
		"token_endpoint":                        p + "/token",
		"introspection_endpoint":                p + "/token/introspect",
		"userinfo_endpoint":                     p + "/userinfo",
		"end_session_endpoint":                  p + "/logout",
		"revocation_endpoint":                   p + "/revoke",
		"jwks_uri":                              p + "/certs",
		"grant_types_supported":                 []string{"authorization_code", "client_credentials", "implicit", "password", "refresh_token"},
		"response_types_supported":              []string{"code", "none", "id_token", "token", "id_token token", "code id_token", "code token", "code id_token token"},
		"subject_types_supported":               []string{"public", "pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"userinfo_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt", "client_secret_basic", "client_secret_post", "tls_client_auth", "client_secret_jwt"},
		"scopes_supported":                      []string{"openid", "acr", "address", "basic", "email", "microprofile-jwt", "offline_access", "organization", "phone", "profile", "roles", "web-origins"},
		"claims_supported":                      []string{"aud", "sub", "iss", "auth_time", "name", "given_name", "family_name", "preferred_username", "email", "acr"},
	})
}

func (s *Server) certs(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rl := s.oidcRealm(w, r)
	if rl == nil {
		return
	}
	pub := rl.key.PublicKey
	writeJSON(w, http.StatusOK, map[string]any{"keys": []map[string]any{{
		"kid": rl.keyID, "kty": "RSA", "alg": "RS256", "use": "sig",
		"n": b64(pub.N.Bytes()), "e": b64(bigEndian(pub.E)),
	}}})
}

// clientCredentials reads client_id/client_secret the way Keycloak does:
// HTTP Basic first, then form fields override whichever they carry.
func clientCredentials(r *http.Request) (id, secret string) {
	id, secret, _ = r.BasicAuth()
	if r.PostForm.Has("client_id") {
		id = r.PostForm.Get("client_id")
	}
	if r.PostForm.Has("client_secret") {
		secret = r.PostForm.Get("client_secret")
	}
	return id, secret
}

type oauthErr struct {
	status      int
	code, descr string
}

func (e *oauthErr) write(w http.ResponseWriter) { writeOAuthError(w, e.status, e.code, e.descr) }

// authenticateClient: an unknown client is invalid_client, a wrong secret
// unauthorized_client, both 401 with the same description (Keycloak's).
func authenticateClient(rl *realm, r *http.Request) (*client, *oauthErr) {
	const desc = "Invalid client or Invalid client credentials"
	id, secret := clientCredentials(r)
	c := rl.clientByClientID(id)
	if id == "" || c == nil || !c.Enabled {
		return nil, &oauthErr{http.StatusUnauthorized, "invalid_client", desc}
	}
	if c.BearerOnly {
		return nil, &oauthErr{http.StatusBadRequest, "invalid_client", "Bearer-only not allowed"}
	}
	if !c.PublicClient && (c.Secret == "" || secret != c.Secret) {
		return nil, &oauthErr{http.StatusUnauthorized, "unauthorized_client", desc}
	}
	return c, nil
}

func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Invalid request")
		return
	}
	grant := r.PostForm.Get("grant_type")
	switch grant {
	case "":
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Missing form parameter: grant_type")
		return
	case "password", "client_credentials", "refresh_token", "authorization_code":
	default:
		writeOAuthError(w, http.StatusBadRequest, "unsupported_grant_type", "Unsupported grant_type")
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	rl := s.oidcRealm(w, r)
	if rl == nil {
		return
	}
	c, oe := authenticateClient(rl, r)
	allowOrigin(w, r, c)
	if oe != nil {
		oe.write(w)
		return
	}
	t := tokenRequest{realm: rl, issuer: issuerOf(r, rl.Name), client: c}
	switch grant {
	case "password":
		oe = s.passwordGrant(r, &t)
	case "client_credentials":
		oe = clientCredentialsGrant(r, &t)
	case "refresh_token":
		oe = refreshGrant(r, &t)
	case "authorization_code":
		oe = s.codeGrant(r, &t)
	}
	if oe != nil {
		if oe.code == "invalid_grant" && grant == "password" {
			oe.status = s.invalidGrant
		}
		oe.write(w)
		return
	}
	body, err := issueTokens(t, grant == "client_credentials")
	if err != nil {
		writeOAuthError(w, http.StatusInternalServerError, "unknown_error", err.Error())
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// invalid_grant answers 400 (RFC 6749 §5.2), but before 26.6 Keycloak's
// password grant answered its failures 401, as the real 26.5 still does
// while its refresh grant answers 400; the token endpoint sets the password
// grant's status of the release it follows (Config.Version).
func invalidGrant(desc string) *oauthErr {
	return &oauthErr{http.StatusBadRequest, "invalid_grant", desc}
}

// InvalidGrantStatus is the HTTP status a Keycloak release gives a password
// grant's invalid_grant answer (a bad password, an unknown user).
func InvalidGrantStatus(version string) (int, error) {
	var major, minor int
	if _, err := fmt.Sscanf(version, "%d.%d", &major, &minor); err != nil || major < 26 {
		return 0, fmt.Errorf("keycloak version %q: want 26.x or later, e.g. 26.5 or 26.6", version)
	}
	if major == 26 && minor < 6 {
		return http.StatusUnauthorized, nil
	}
	return http.StatusBadRequest, nil
}

func (s *Server) passwordGrant(r *http.Request, t *tokenRequest) *oauthErr {
	if !t.client.DirectAccessGrantsEnabled {
		return &oauthErr{http.StatusBadRequest, "unauthorized_client", "Client not allowed for direct access grants"}
	}
	u := t.realm.userByUsername(r.PostForm.Get("username"))
	if u == nil {
		u = t.realm.userByEmail(r.PostForm.Get("username")) // Keycloak allows login with email by default
	}
	if u == nil || u.ServiceAccountOf != "" {
		return invalidGrant("Invalid user credentials")
	}
	if !u.Enabled {
		return invalidGrant("Account disabled")
	}
	if !s.verifier.verify(u.Password, r.PostForm.Get("password")) {
		return invalidGrant("Invalid user credentials")
	}
	t.user, t.sid = u, newID()
	return t.requestScope(r.PostForm.Get("scope"))
}

func clientCredentialsGrant(r *http.Request, t *tokenRequest) *oauthErr {
	if t.client.PublicClient {
		return &oauthErr{http.StatusUnauthorized, "unauthorized_client", "Public client not allowed to retrieve service account"}
	}
	if !t.client.ServiceAccountsEnabled {
		return &oauthErr{http.StatusUnauthorized, "unauthorized_client", "Client not enabled to retrieve service account"}
	}
	u := t.realm.serviceAccountUser(t.client)
	if u == nil || !u.Enabled {
		return invalidGrant("Service account user is not enabled")
	}
	t.user, t.clientSA = u, true
	return t.requestScope(r.PostForm.Get("scope"))
}

func refreshGrant(r *http.Request, t *tokenRequest) *oauthErr {
	c, err := verifyToken(t.realm, t.issuer, r.PostForm.Get("refresh_token"), "Refresh", time.Now())
	if errors.Is(err, errSessionNotActive) {
		return invalidGrant("Session not active")
	}
	if err != nil || c["azp"] != t.client.ClientID {
		return invalidGrant("Invalid refresh token")
	}
	sub, _ := c["sub"].(string)
	u := t.realm.Users[sub]
	if u == nil || !u.Enabled {
		return invalidGrant("Invalid refresh token")
	}
	t.user, t.sid = u, c["sid"].(string)
	granted, _ := c["scope"].(string)
	t.scope, t.openid, t.scopes, _ = requestedScopes(t.realm, t.client, granted)
	return nil
}

// requestScope grants the scopes a token request asks for, or refuses
// them all, as Keycloak does, when one is unknown to the client.
func (t *tokenRequest) requestScope(requested string) *oauthErr {
	var ok bool
	t.scope, t.openid, t.scopes, ok = requestedScopes(t.realm, t.client, requested)
	if !ok {
		return &oauthErr{http.StatusBadRequest, "invalid_scope", "Invalid scopes: " + requested}
	}
	return nil
}

func hasScope(scope, want string) bool { return contains(strings.Fields(scope), want) }

type tokenResponse struct {
	AccessToken      string `json:"access_token"`
	ExpiresIn        int    `json:"expires_in"`
	RefreshExpiresIn int    `json:"refresh_expires_in"`
	RefreshToken     string `json:"refresh_token,omitempty"`
	TokenType        string `json:"token_type"`
	IDToken          string `json:"id_token,omitempty"`
	NotBeforePolicy  int    `json:"not-before-policy"`
	SessionState     string `json:"session_state,omitempty"`
	Scope            string `json:"scope"`
}

// issueTokens signs the set; client_credentials gets no refresh token and no
// session, as in Keycloak 26.
func issueTokens(t tokenRequest, serviceAccount bool) (*tokenResponse, error) {
	now := time.Now()
	life := t.realm.AccessTokenLifespan
	if v := t.client.Attributes["access.token.lifespan"]; v != "" {
		var n int
		if _, err := fmt.Sscan(v, &n); err == nil && n > 0 {
			life = n
		}
	}
	at, err := signRS256(t.realm, accessClaims(t, now, life))
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{AccessToken: at, ExpiresIn: life, TokenType: "Bearer", Scope: t.scope}
	if t.openid {
		if resp.IDToken, err = signRS256(t.realm, idClaims(t, now, life, at)); err != nil {
			return nil, err
		}
	}
	if serviceAccount {
		return resp, nil
	}
	refreshLife := t.realm.SSOSessionIdleTimeout
	if resp.RefreshToken, err = signHS512(t.realm, refreshClaims(t, now, refreshLife)); err != nil {
		return nil, err
	}
	resp.RefreshExpiresIn, resp.SessionState = refreshLife, t.sid
	return resp, nil
}

func (s *Server) userinfo(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rl := s.oidcRealm(w, r)
	if rl == nil {
		return
	}
	tok := bearer(r)
	if tok == "" {
		_ = r.ParseForm()
		tok = r.PostForm.Get("access_token")
	}
	challenge := func(status int, code, desc string) {
		v := fmt.Sprintf("Bearer realm=%q", rl.Name)
		if code != "" {
			v += fmt.Sprintf(", error=%q, error_description=%q", code, desc)
		}
		w.Header().Set("WWW-Authenticate", v)
		w.WriteHeader(status)
	}
	if tok == "" {
		challenge(http.StatusUnauthorized, "", "")
		return
	}
	c, err := verifyToken(rl, issuerOf(r, rl.Name), tok, "Bearer", time.Now())
	sub, _ := c["sub"].(string)
	if err != nil || rl.Users[sub] == nil {
		challenge(http.StatusUnauthorized, "invalid_token", "Token verification failed")
		return
	}
	scope, _ := c["scope"].(string)
	if !hasScope(scope, "openid") {
		challenge(http.StatusForbidden, "insufficient_scope", "Missing openid scope")
		return
	}
	out := claims{"sub": sub}
	addProfileClaims(out, tokenRequest{user: rl.Users[sub]})
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Invalid request")
		return
	}
	var oe *oauthErr
	var unknownRealm bool
	err := s.update(func(st *state) error {
		rl := st.Realms[r.PathValue("realm")]
		if rl == nil {
			unknownRealm = true
			return errNoChange
		}
		c, e := authenticateClient(rl, r)
		allowOrigin(w, r, c)
		if e != nil {
			oe = e
			return errNoChange
		}
		cl, err := verifyToken(rl, issuerOf(r, rl.Name), r.PostForm.Get("refresh_token"), "Refresh", time.Now())
		if errors.Is(err, errSessionNotActive) {
			oe = invalidGrant("Session not active")
			return errNoChange
		}
		if err != nil || cl["azp"] != c.ClientID {
			oe = invalidGrant("Invalid refresh token")
			return errNoChange
		}
		exp, _ := cl["exp"].(float64)
		rl.RevokedSessions[cl["sid"].(string)] = int64(exp)
		pruneRevoked(rl, time.Now())
		rl.touch(kindSettings, "")
		return nil
	})
	switch {
	case unknownRealm:
		writeError(w, http.StatusNotFound, "Realm does not exist")
	case oe != nil:
		oe.write(w)
	case err != nil:
		writeOAuthError(w, http.StatusInternalServerError, "unknown_error", err.Error())
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// pruneRevoked forgets revocations whose tokens have expired anyway, so the
// set stays small.
func pruneRevoked(rl *realm, now time.Time) {
	for sid, exp := range rl.RevokedSessions {
		if exp < now.Unix() {
			delete(rl.RevokedSessions, sid)
		}
	}
}

// errNoChange aborts an update whose handler already decided the answer.
var errNoChange = errors.New("no change")

func bearer(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}
