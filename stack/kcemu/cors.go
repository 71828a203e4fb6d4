package kcemu

import (
	"net/http"
	"net/url"
	"slices"
)

// Keycloak answers a browser's cross-origin calls to the token, logout
// and userinfo endpoints with CORS headers when the calling client's
// webOrigins allow the page's origin ("*", the origin itself, or "+" for
// the origins of its redirect URIs), and answers every preflight.

// corsPreflight answers OPTIONS on the OIDC endpoints a page calls.
func corsPreflight(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		w.WriteHeader(http.StatusOK)
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	h.Set("Access-Control-Allow-Methods", "GET, POST, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Origin, Accept, X-Requested-With, Content-Type, Authorization")
	h.Set("Access-Control-Max-Age", "3600")
	w.WriteHeader(http.StatusOK)
}

// allowOrigin sets the CORS headers of an answer to client c when its
// webOrigins allow the request's origin.
func allowOrigin(w http.ResponseWriter, r *http.Request, c *client) {
	origin := r.Header.Get("Origin")
	if origin == "" || c == nil || !webOriginAllowed(c, origin) {
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", origin)
	w.Header().Set("Access-Control-Allow-Credentials", "true")
	w.Header().Add("Vary", "Origin")
}

func webOriginAllowed(c *client, origin string) bool {
	for _, o := range c.WebOrigins {
		switch o {
		case "*", origin:
			return true
		case "+":
			if slices.ContainsFunc(c.RedirectURIs, func(u string) bool { return u == "*" || originOf(u) == origin }) {
				return true
			}
		}
	}
	return false
}

func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}
