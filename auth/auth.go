package auth

import (
	"errors"
	"net/http"
	"slices"
	"strings"
)

// Principal is an authenticated caller.
type Principal struct {
	Subject    string   // the token's sub
	Username   string   // the token's preferred_username: the actor of commands
	RealmRoles []string // realm_access.roles
	Admin      bool     // holds the platform admin realm role
}

// HasRealmRole reports whether the caller holds a realm role.
func (p Principal) HasRealmRole(role string) bool { return slices.Contains(p.RealmRoles, role) }

// Authenticator finds the caller of a request.
type Authenticator interface {
	Authenticate(r *http.Request) (Principal, error)
}

// Error is an authentication failure the caller can fix with another
// token; the API answers it with 401 and the challenge below.
type Error struct {
	// Code is the RFC 6750 error code: "invalid_token", "invalid_request",
	// or "" when the request carried no credentials at all.
	Code        string
	Description string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return e.Description
	}
	return e.Code + ": " + e.Description
}

// Realm is the protection space named in every challenge.
const Realm = "workspaces"

// Challenge is the WWW-Authenticate header value for e (RFC 6750 §3).
// A request without credentials gets no error code, as §3.1 asks.
func (e *Error) Challenge() string {
	var b strings.Builder
	b.WriteString(`Bearer realm="` + Realm + `"`)
	if e.Code != "" {
		b.WriteString(`, error="` + e.Code + `"`)
		if e.Description != "" {
			b.WriteString(`, error_description="` + quoteSafe(e.Description) + `"`)
		}
	}
	return b.String()
}

// quoteSafe keeps a description inside its quoted-string: RFC 6750 allows
// only printable ASCII without '"' and '\'.
func quoteSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return ' '
		}
		return r
	}, s)
}

// ErrUnavailable means the caller could not be checked because something
// we depend on (the identity provider's keys) did not answer: the API
// says 503, not 401, since another token would not help.
var ErrUnavailable = errors.New("authentication unavailable")

// ErrNoToken is the failure for a request without a bearer token.
var ErrNoToken = &Error{Description: "a bearer token is required"}

// BearerToken extracts the token of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return "", &Error{Code: "invalid_request", Description: "the Authorization header must be: Bearer <token>"}
	}
	return strings.TrimSpace(token), nil
}

// Static authenticates every request as the same principal: for tests and
// the --insecure-no-auth dev mode, never for production.
func Static(p Principal) Authenticator { return staticAuth{p: p} }

type staticAuth struct{ p Principal }

func (s staticAuth) Authenticate(*http.Request) (Principal, error) { return s.p, nil }

// Func adapts a function to an Authenticator.
type Func func(r *http.Request) (Principal, error)

// Authenticate implements Authenticator.
func (f Func) Authenticate(r *http.Request) (Principal, error) { return f(r) }
