package kcemu

import (
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// browserLogout is Keycloak's RP-initiated logout (GET .../logout): it
// ends the browser's session (its cookie's, or the one id_token_hint
// names) and sends the browser to post_logout_redirect_uri when the
// client allows that URI. Without an id_token_hint Keycloak first asks
// "Do you want to log out?"; so does this page, with Keycloak's button id.
func (s *Server) browserLogout(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("id_token_hint") == "" && q.Get("confirm") == "" {
		renderLogoutConfirm(w, r)
		return
	}
	var redirect string
	var bad, unknownRealm bool
	_ = s.update(func(st *state) error {
		rl := st.Realms[r.PathValue("realm")]
		if rl == nil {
			unknownRealm = true
			return errNoChange
		}
		c, sid := s.logoutTarget(r, rl)
		if to := q.Get("post_logout_redirect_uri"); to != "" {
			if c == nil || !postLogoutAllowed(c, to) {
				bad = true
				return errNoChange
			}
			redirect = withState(to, q.Get("state"))
		}
		if sid == "" {
			return errNoChange
		}
		rl.RevokedSessions[sid] = time.Now().Add(24 * time.Hour).Unix()
		return nil
	})
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: "/realms/" + r.PathValue("realm") + "/", MaxAge: -1})
	switch {
	case unknownRealm:
		writeError(w, http.StatusNotFound, "Realm does not exist")
	case bad:
		http.Error(w, "Invalid redirect uri", http.StatusBadRequest)
	case redirect != "":
		http.Redirect(w, r, redirect, http.StatusFound)
	default:
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write([]byte(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Signed out</title></head><body><h1 id="kc-page-title">You are logged out</h1></body></html>`))
	}
}

// logoutTarget finds the client and the session to end: from a valid
// id_token_hint, else from client_id and the browser's session cookie.
func (s *Server) logoutTarget(r *http.Request, rl *realm) (*client, string) {
	q := r.URL.Query()
	if hint := q.Get("id_token_hint"); hint != "" {
		if cl, err := verifyToken(rl, issuerOf(r, rl.Name), hint, "ID", time.Now()); err == nil {
			azp, _ := cl["azp"].(string)
			sid, _ := cl["sid"].(string)
			return rl.clientByClientID(azp), sid
		}
	}
	_, sid := s.session(r, rl)
	return rl.clientByClientID(q.Get("client_id")), sid
}

// postLogoutAllowed follows the client attribute post.logout.redirect.uris:
// "*", "+" (its redirect URIs) or the URIs themselves, separated by "##".
func postLogoutAllowed(c *client, to string) bool {
	for _, allowed := range strings.Split(c.Attributes["post.logout.redirect.uris"], "##") {
		switch {
		case allowed == "*", allowed == to:
			return true
		case allowed == "+" && slices.ContainsFunc(c.RedirectURIs, func(u string) bool { return redirectMatches(u, to) }):
			return true
		}
	}
	return false
}

// redirectMatches is Keycloak's redirect-URI rule in short: "*" anything,
// a trailing "*" a prefix, else the same URI.
func redirectMatches(pattern, to string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(to, p)
	}
	return pattern == to
}

func withState(to, state string) string {
	if state == "" {
		return to
	}
	u, err := url.Parse(to)
	if err != nil {
		return to
	}
	v := u.Query()
	v.Set("state", state)
	u.RawQuery = v.Encode()
	return u.String()
}

var logoutTmpl = template.Must(template.New("logout").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Logging out</title></head>
<body>
<h1 id="kc-page-title">Logging out</h1>
<p>Do you want to log out?</p>
<form id="kc-logout-form" action="{{.Action}}" method="get">
{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{$v}}">{{end}}
<input type="hidden" name="confirm" value="1">
<input type="submit" id="kc-logout" name="confirmLogout" value="Logout">
</form>
</body></html>
`))

func renderLogoutConfirm(w http.ResponseWriter, r *http.Request) {
	params := map[string]string{}
	for k, v := range r.URL.Query() {
		if len(v) > 0 {
			params[k] = v[0]
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = logoutTmpl.Execute(w, struct {
		Action string
		Params map[string]string
	}{Action: baseURL(r) + r.URL.Path, Params: params})
}
