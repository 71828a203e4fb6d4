package kcemu

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The authorization-code flow keeps two short-lived things in memory only,
// as a restart of Keycloak loses them too: logins waiting for the form,
// and codes waiting for their exchange.
const (
	loginLifespan = 30 * time.Minute // Keycloak's "Login timeout"
	codeLifespan  = time.Minute      // Keycloak's accessCodeLifespan
)

// authRequest is an /auth request being answered.
type authRequest struct {
	realm, clientID, redirect, state, scope, nonce string
	challenge, method                              string // PKCE
	expires                                        time.Time
}

// authCode is an issued code: single use, short-lived.
type authCode struct {
	authRequest
	userID, sid string
}

type flows struct {
	mu     sync.Mutex
	logins map[string]*authRequest // by tab id
	codes  map[string]*authCode    // by code
}

func newFlows() *flows {
	return &flows{logins: map[string]*authRequest{}, codes: map[string]*authCode{}}
}

func (f *flows) addLogin(ar *authRequest) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for k, v := range f.logins {
		if now.After(v.expires) {
			delete(f.logins, k)
		}
	}
	id := newID()
	ar.expires = now.Add(loginLifespan)
	f.logins[id] = ar
	return id
}

func (f *flows) login(tab string) *authRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	ar := f.logins[tab]
	if ar == nil || time.Now().After(ar.expires) {
		return nil
	}
	return ar
}

func (f *flows) issueCode(ar authRequest, userID, sid string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	for k, v := range f.codes {
		if now.After(v.expires) {
			delete(f.codes, k)
		}
	}
	code := newID() + "." + newID()
	ar.expires = now.Add(codeLifespan)
	f.codes[code] = &authCode{authRequest: ar, userID: userID, sid: sid}
	return code
}

// takeCode returns a code's grant and forgets it: a code is tried once,
// right or wrong, as Keycloak does.
func (f *flows) takeCode(code string) *authCode {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.codes[code]
	delete(f.codes, code)
	if c == nil || time.Now().After(c.expires) {
		return nil
	}
	return c
}

// redirectAllowed applies Keycloak's redirect URI rules: an exact match, or
// a pattern ending in * matching by prefix ("*" alone matches anything).
func redirectAllowed(c *client, uri string) bool {
	if uri == "" {
		return false
	}
	for _, p := range c.RedirectURIs {
		if p == uri || (strings.HasSuffix(p, "*") && strings.HasPrefix(uri, strings.TrimSuffix(p, "*"))) {
			return true
		}
	}
	return false
}

// redirectError sends the browser back to the client with an OAuth error.
func redirectError(w http.ResponseWriter, r *http.Request, ar authRequest, code, desc string) {
	q := url.Values{"error": {code}, "error_description": {desc}}
	if ar.state != "" {
		q.Set("state", ar.state)
	}
	http.Redirect(w, r, withQuery(ar.redirect, q), http.StatusFound)
}

func withQuery(uri string, q url.Values) string {
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + q.Encode()
}

// codeGrant exchanges a code, checking the client, the redirect URI and
// the PKCE verifier.
func (s *Server) codeGrant(r *http.Request, t *tokenRequest) *oauthErr {
	c := s.flows.takeCode(r.PostForm.Get("code"))
	if c == nil || c.realm != t.realm.Name || c.clientID != t.client.ClientID {
		return invalidGrant("Code not valid")
	}
	if r.PostForm.Get("redirect_uri") != c.redirect {
		return invalidGrant("Incorrect redirect_uri")
	}
	if oe := checkVerifier(c.challenge, c.method, r.PostForm.Get("code_verifier")); oe != nil {
		return oe
	}
	u := t.realm.Users[c.userID]
	if u == nil || !u.Enabled {
		return invalidGrant("User not found")
	}
	if _, revoked := t.realm.RevokedSessions[c.sid]; revoked {
		return invalidGrant("Session not active")
	}
	t.user, t.sid = u, c.sid
	t.scope, t.openid, t.scopes, _ = requestedScopes(t.realm, t.client, c.scope)
	return nil
}

func checkVerifier(challenge, method, verifier string) *oauthErr {
	if challenge == "" {
		return nil
	}
	if verifier == "" {
		return invalidGrant("PKCE code verifier not specified")
	}
	got := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		got = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if subtle.ConstantTimeCompare([]byte(got), []byte(challenge)) != 1 {
		return invalidGrant("PKCE verification failed: Invalid code verifier")
	}
	return nil
}
