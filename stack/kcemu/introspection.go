package kcemu

import (
	"errors"
	"maps"
	"net/http"
	"time"
)

// introspect is RFC 7662 as Keycloak answers it: a confidential client asks
// about a token; an active one comes back with its claims and client_id,
// username and token_type, anything else (bad signature, expired, its
// session ended) as {"active": false}.
func (s *Server) introspect(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		writeOAuthError(w, http.StatusBadRequest, "invalid_request", "Invalid request")
		return
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	rl := s.oidcRealm(w, r)
	if rl == nil {
		return
	}
	if _, oe := authenticateClient(rl, r); oe != nil {
		oe.write(w)
		return
	}
	cl, err := verifyAny(rl, issuerOf(r, rl.Name), r.PostForm.Get("token"))
	if err != nil {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	out := maps.Clone(cl)
	out["active"] = true
	out["client_id"] = cl["azp"]
	out["username"] = cl["preferred_username"]
	out["token_type"] = "Bearer"
	writeJSON(w, http.StatusOK, out)
}

// revoke is RFC 7009: revoking a token ends its session, so neither its
// refresh token nor the session's access tokens work any more. A token
// that is not valid is not an error (§2.2).
func (s *Server) revoke(w http.ResponseWriter, r *http.Request) {
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
		if e != nil {
			oe = e
			return errNoChange
		}
		cl, err := verifyAny(rl, issuerOf(r, rl.Name), r.PostForm.Get("token"))
		sid, _ := cl["sid"].(string)
		if err != nil || sid == "" || cl["azp"] != c.ClientID {
			return errNoChange
		}
		// Long enough to outlive every token of the session.
		rl.RevokedSessions[sid] = time.Now().Add(time.Duration(rl.SSOSessionMaxLifespan) * time.Second).Unix()
		pruneRevoked(rl, time.Now())
		rl.touch(kindSettings, "")
		return nil
	})
	switch {
	case unknownRealm:
		writeError(w, http.StatusNotFound, "Realm does not exist")
	case oe != nil:
		oe.write(w)
	case err != nil && !errors.Is(err, errNoChange):
		writeOAuthError(w, http.StatusInternalServerError, "unknown_error", err.Error())
	default:
		w.WriteHeader(http.StatusOK)
	}
}

// verifyAny accepts an access token or a refresh token.
func verifyAny(rl *realm, issuer, tok string) (claims, error) {
	now := time.Now()
	if c, err := verifyToken(rl, issuer, tok, "Bearer", now); err == nil {
		return c, nil
	}
	return verifyToken(rl, issuer, tok, "Refresh", now)
}
