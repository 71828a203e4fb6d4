package kcemu

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// authorization is the authorization endpoint: it checks the client, the
// redirect URI and PKCE, then signs the browser in with its session cookie
// or shows the login form.
func (s *Server) authorization(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	rl := s.oidcRealm(w, r)
	if rl == nil {
		return
	}
	q := r.URL.Query()
	c := rl.clientByClientID(q.Get("client_id"))
	if c == nil || !c.Enabled {
		loginError(w, "Client not found.")
		return
	}
	ar := authRequest{realm: rl.Name, clientID: c.ClientID, redirect: q.Get("redirect_uri"), state: q.Get("state"),
		scope: q.Get("scope"), nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), method: q.Get("code_challenge_method")}
	if !redirectAllowed(c, ar.redirect) {
		loginError(w, "Invalid parameter: redirect_uri")
		return
	}
	if q.Get("response_type") != "code" || !c.StandardFlowEnabled {
		redirectError(w, r, ar, "unauthorized_client", "Client is not allowed to initiate browser login with given response_type. Standard flow is disabled for the client.")
		return
	}
	if desc := pkceProblem(c, &ar); desc != "" {
		redirectError(w, r, ar, "invalid_request", desc)
		return
	}
	if u, sid := s.session(r, rl); u != nil {
		s.signedIn(w, r, rl, ar, u, sid)
		return
	}
	renderLogin(w, r, rl, s.flows.addLogin(&ar), c.ClientID, "", "")
}

// pkceProblem applies the client's pkce.code.challenge.method and fills in
// the default method; it returns Keycloak's description of what is wrong.
func pkceProblem(c *client, ar *authRequest) string {
	required := c.Attributes["pkce.code.challenge.method"]
	switch {
	case required != "" && ar.method == "":
		return "Missing parameter: code_challenge_method"
	case required != "" && ar.method != required:
		return "Invalid parameter: code challenge method is not matching the configured one"
	case ar.method != "" && ar.challenge == "":
		return "Missing parameter: code_challenge"
	case ar.challenge != "" && ar.method == "":
		ar.method = "plain"
	}
	if ar.method != "" && ar.method != "S256" && ar.method != "plain" {
		return "Invalid parameter: code_challenge_method"
	}
	return ""
}

// loginAction takes the login form's answer.
func (s *Server) loginAction(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		loginError(w, "Invalid request")
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	rl := s.oidcRealm(w, r)
	if rl == nil {
		return
	}
	tab := r.URL.Query().Get("tab_id")
	ar := s.flows.login(tab)
	if ar == nil || ar.realm != rl.Name {
		loginError(w, "Your login attempt timed out. Login will start from the beginning.")
		return
	}
	name := r.PostForm.Get("username")
	u := rl.userByUsername(name)
	if u == nil {
		u = rl.userByEmail(name)
	}
	if u == nil || u.ServiceAccountOf != "" || !u.Enabled || !s.verifier.verify(u.Password, r.PostForm.Get("password")) {
		renderLogin(w, r, rl, tab, ar.clientID, "Invalid username or password.", name)
		return
	}
	sid := newID()
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: sessionValue(rl, u.ID, sid),
		Path: "/realms/" + rl.Name + "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	s.signedIn(w, r, rl, *ar, u, sid)
}

// signedIn sends the browser back to the client with a code.
func (s *Server) signedIn(w http.ResponseWriter, r *http.Request, rl *realm, ar authRequest, u *user, sid string) {
	q := url.Values{"session_state": {sid}, "iss": {issuerOf(r, rl.Name)}, "code": {s.flows.issueCode(ar, u.ID, sid)}}
	if ar.state != "" {
		q.Set("state", ar.state)
	}
	http.Redirect(w, r, withQuery(ar.redirect, q), http.StatusFound)
}

// sessionCookie carries the browser's session: sid and user, signed with
// the realm's HMAC key, so a second login within the session skips the form.
const sessionCookie = "KEYCLOAK_SESSION"

func sessionValue(rl *realm, userID, sid string) string {
	payload := sid + "." + userID
	m := hmac.New(sha256.New, rl.HMACKey)
	m.Write([]byte(payload))
	return payload + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// session is the browser's signed-in user, if its cookie is good and its
// session was not ended.
func (s *Server) session(r *http.Request, rl *realm) (*user, string) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, ""
	}
	parts := strings.Split(ck.Value, ".")
	if len(parts) != 3 || !hmac.Equal([]byte(sessionValue(rl, parts[1], parts[0])), []byte(ck.Value)) {
		return nil, ""
	}
	u := rl.Users[parts[1]]
	if _, revoked := rl.RevokedSessions[parts[0]]; revoked || u == nil || !u.Enabled {
		return nil, ""
	}
	return u, parts[0]
}

// loginTmpl is a plain login page with the ids and names Keycloak's theme
// uses (kc-form-login, username, password), which browser-driving tests rely on.
var loginTmpl = template.Must(template.New("login").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to {{.Realm}}</title></head>
<body>
<h1 id="kc-page-title">Sign in to your account</h1>
{{if .Error}}<div class="alert-error"><span id="input-error">{{.Error}}</span></div>{{end}}
<form id="kc-form-login" action="{{.Action}}" method="post">
<label for="username">Username or email</label>
<input id="username" name="username" type="text" value="{{.Username}}" autofocus autocomplete="username">
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password">
<input type="hidden" id="id-hidden-input" name="credentialId">
<input type="submit" id="kc-login" name="login" value="Sign In">
</form>
</body></html>
`))

func renderLogin(w http.ResponseWriter, r *http.Request, rl *realm, tab, clientID, errMsg, username string) {
	action := baseURL(r) + "/realms/" + rl.Name + "/login-actions/authenticate?" +
		url.Values{"tab_id": {tab}, "client_id": {clientID}}.Encode()
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.Header().Set("Cache-Control", "no-store, must-revalidate, max-age=0")
	_ = loginTmpl.Execute(w, map[string]string{"Realm": rl.DisplayName, "Action": action, "Error": errMsg, "Username": username})
}

// loginError is Keycloak's error page: a 400 the user reads.
func loginError(w http.ResponseWriter, msg string) {
	w.Header().Set("Content-Type", "text/html;charset=utf-8")
	w.WriteHeader(http.StatusBadRequest)
	_ = template.Must(template.New("error").Parse(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>We are sorry...</title></head>
<body><h1 id="kc-page-title">We are sorry...</h1><p id="kc-error-message" class="instruction">{{.}}</p></body></html>
`)).Execute(w, msg)
}
