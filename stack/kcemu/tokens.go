package kcemu

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// claims is a JWT payload; a map keeps Keycloak's optional claims optional.
type claims map[string]any

func signRS256(r *realm, c claims) (string, error) {
	header := map[string]string{"alg": "RS256", "typ": "JWT", "kid": r.keyID}
	input, err := jwtInput(header, c)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, r.key, crypto.SHA256, sum[:])
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return input + "." + b64(sig), nil
}

// signHS512 signs refresh tokens, which Keycloak signs with the realm's HMAC
// key rather than the published RSA key.
func signHS512(r *realm, c claims) (string, error) {
	header := map[string]string{"alg": "HS512", "typ": "JWT", "kid": r.HMACKeyID}
	input, err := jwtInput(header, c)
	if err != nil {
		return "", err
	}
	m := hmac.New(sha512.New, r.HMACKey)
	m.Write([]byte(input))
	return input + "." + b64(m.Sum(nil)), nil
}

func jwtInput(header map[string]string, c claims) (string, error) {
	h, err := json.Marshal(header)
	if err != nil {
		return "", fmt.Errorf("marshal JWT header: %w", err)
	}
	p, err := json.Marshal(c)
	if err != nil {
		return "", fmt.Errorf("marshal JWT claims: %w", err)
	}
	return b64(h) + "." + b64(p), nil
}

var errBadToken = errors.New("invalid token")

// tokenIssuerRealm reads the realm name from an unverified token's iss, so
// the right key can be chosen for verification.
func tokenIssuerRealm(tok string) (string, error) {
	c, err := unverifiedClaims(tok)
	if err != nil {
		return "", err
	}
	iss, _ := c["iss"].(string)
	i := strings.LastIndex(iss, "/realms/")
	if i < 0 {
		return "", errBadToken
	}
	return iss[i+len("/realms/"):], nil
}

func unverifiedClaims(tok string) (claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errBadToken
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, errBadToken
	}
	var c claims
	if err := json.Unmarshal(raw, &c); err != nil {
		return nil, errBadToken
	}
	return c, nil
}

// verifyToken checks signature, issuer, expiry and type of a token the realm
// issued. wantTyp is "Bearer" for access tokens, "Refresh" for refresh tokens.
func verifyToken(r *realm, issuer, tok, wantTyp string, now time.Time) (claims, error) {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, errBadToken
	}
	var header struct {
		Alg string `json:"alg"`
		Kid string `json:"kid"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil || json.Unmarshal(hb, &header) != nil {
		return nil, errBadToken
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return nil, errBadToken
	}
	input := parts[0] + "." + parts[1]
	switch {
	case header.Alg == "RS256" && header.Kid == r.keyID:
		sum := sha256.Sum256([]byte(input))
		if rsa.VerifyPKCS1v15(&r.key.PublicKey, crypto.SHA256, sum[:], sig) != nil {
			return nil, errBadToken
		}
	case header.Alg == "HS512" && header.Kid == r.HMACKeyID:
		m := hmac.New(sha512.New, r.HMACKey)
		m.Write([]byte(input))
		if !hmac.Equal(m.Sum(nil), sig) {
			return nil, errBadToken
		}
	default:
		return nil, errBadToken
	}
	c, err := unverifiedClaims(tok)
	if err != nil {
		return nil, err
	}
	if c["iss"] != issuer || c["typ"] != wantTyp {
		return nil, errBadToken
	}
	exp, ok := c["exp"].(float64)
	if !ok || now.Unix() >= int64(exp) {
		return nil, errBadToken
	}
	if sid, _ := c["sid"].(string); sid != "" {
		if _, revoked := r.RevokedSessions[sid]; revoked {
			return nil, errSessionNotActive
		}
	}
	return c, nil
}

var errSessionNotActive = errors.New("session not active")

// tokenRequest is what the token endpoint decided to issue.
type tokenRequest struct {
	realm    *realm
	issuer   string
	client   *client
	user     *user
	sid      string // "" for client_credentials, which has no user session
	scope    string
	scopes   []*clientScope // the realm's own client scopes granted
	openid   bool
	clientSA bool
}

// accessClaims builds Keycloak's access token claims, including its
// audience resolution: every client whose roles the user holds (other than
// the requesting client itself) is an audience, as are audience mappers'.
func accessClaims(t tokenRequest, now time.Time, lifespan int) claims {
	c := claims{
		"exp": now.Unix() + int64(lifespan), "iat": now.Unix(), "jti": newID(),
		"iss": t.issuer, "sub": t.user.ID, "typ": "Bearer", "azp": t.client.ClientID,
		"scope": t.scope,
	}
	if t.sid != "" {
		c["sid"] = t.sid
	}
	if t.client.Attributes[lightweightAttr] == "true" {
		return c // a lightweight token carries only the basic claims
	}
	c["acr"] = "1"
	if len(t.client.WebOrigins) > 0 {
		c["allowed-origins"] = t.client.WebOrigins
	}
	realmRoles, clientRoles := rolesForToken(t.realm, t.client, t.scopes, t.user)
	if len(realmRoles) > 0 {
		c["realm_access"] = map[string]any{"roles": realmRoles}
	}
	var aud []string
	if len(clientRoles) > 0 {
		ra := map[string]any{}
		for cid, roles := range clientRoles {
			ra[cid] = map[string]any{"roles": roles}
			if cid != t.client.ClientID {
				aud = append(aud, cid)
			}
		}
		c["resource_access"] = ra
	}
	for _, m := range t.client.ProtocolMappers {
		if m.ProtocolMapper != "oidc-audience-mapper" || m.Config["access.token.claim"] == "false" {
			continue
		}
		for _, a := range []string{m.Config["included.client.audience"], m.Config["included.custom.audience"]} {
			if a != "" && !contains(aud, a) {
				aud = append(aud, a)
			}
		}
	}
	sort.Strings(aud)
	switch len(aud) {
	case 0:
	case 1:
		c["aud"] = aud[0]
	default:
		c["aud"] = aud
	}
	addProfileClaims(c, t)
	return c
}

func addProfileClaims(c claims, t tokenRequest) {
	u := t.user
	c["email_verified"] = u.EmailVerified
	c["preferred_username"] = u.Username
	if name := strings.TrimSpace(u.FirstName + " " + u.LastName); name != "" {
		c["name"] = name
	}
	if u.FirstName != "" {
		c["given_name"] = u.FirstName
	}
	if u.LastName != "" {
		c["family_name"] = u.LastName
	}
	if u.Email != "" {
		c["email"] = u.Email
	}
	if t.clientSA {
		c["client_id"] = t.client.ClientID
		c["clientHost"] = "127.0.0.1"
		c["clientAddress"] = "127.0.0.1"
	}
}

func idClaims(t tokenRequest, now time.Time, lifespan int, accessToken string) claims {
	sum := sha256.Sum256([]byte(accessToken))
	c := claims{
		"exp": now.Unix() + int64(lifespan), "iat": now.Unix(), "jti": newID(),
		"iss": t.issuer, "aud": t.client.ClientID, "sub": t.user.ID, "typ": "ID",
		"azp": t.client.ClientID, "at_hash": b64(sum[:16]), "acr": "1",
	}
	if t.sid != "" {
		c["sid"] = t.sid
	}
	addProfileClaims(c, t)
	return c
}

func refreshClaims(t tokenRequest, now time.Time, lifespan int) claims {
	return claims{
		"exp": now.Unix() + int64(lifespan), "iat": now.Unix(), "jti": newID(),
		"iss": t.issuer, "aud": t.issuer, "sub": t.user.ID, "typ": "Refresh",
		"azp": t.client.ClientID, "sid": t.sid, "scope": t.scope,
	}
}

// rolesForToken lists the user's effective realm roles and client roles by
// clientId, as far as the requesting client's scope lets them through.
func rolesForToken(r *realm, c *client, scopes []*clientScope, u *user) ([]string, map[string][]string) {
	var realmRoles []string
	clientRoles := map[string][]string{}
	scoped := r.inScope(c, scopes)
	for _, ro := range r.effectiveRoles(u) {
		if !scoped(ro) {
			continue
		}
		if ro.ClientID == "" {
			realmRoles = append(realmRoles, ro.Name)
			continue
		}
		if c := r.Clients[ro.ClientID]; c != nil {
			clientRoles[c.ClientID] = append(clientRoles[c.ClientID], ro.Name)
		}
	}
	sort.Strings(realmRoles)
	for _, v := range clientRoles {
		sort.Strings(v)
	}
	return realmRoles, clientRoles
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// publicKeyBase64 is the realm's public key as GET /realms/{realm} shows it.
func publicKeyBase64(r *realm) string {
	der, err := x509.MarshalPKIXPublicKey(&r.key.PublicKey)
	if err != nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(der)
}
