package kccontract

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/Nerzal/gocloak/v13"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// verify checks tok's signature against the realm's JWKS and returns it.
func (tg *target) verify(t *testing.T, tok string) jwt.Token {
	t.Helper()
	resp, err := http.Get(tg.URL + "/realms/" + tg.Realm + "/protocol/openid-connect/certs")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	set, err := jwk.Parse(body)
	if err != nil {
		t.Fatalf("parse JWKS: %v", err)
	}
	parsed, err := jwt.Parse([]byte(tok), jwt.WithKeySet(set))
	if err != nil {
		t.Fatalf("token does not verify with the realm's JWKS: %v", err)
	}
	return parsed
}

func claim[T any](t *testing.T, tok jwt.Token, name string) T {
	t.Helper()
	var v T
	if err := tok.Get(name, &v); err != nil {
		t.Fatalf("claim %q: %v", name, err)
	}
	return v
}

func TestPasswordGrantTokenVerifiesAndCarriesKeycloakClaims(t *testing.T) {
	forEachTarget(t, testPasswordGrantTokenVerifiesAndCarriesKeycloakClaims)
}

func testPasswordGrantTokenVerifiesAndCarriesKeycloakClaims(t *testing.T, tg *target) {
	resp := tg.userToken(t, kcemu.DevUser1)
	eq(t, "token_type", resp.TokenType, "Bearer")
	// Keycloak's order of the granted scopes is its own: compare them as a set.
	eq(t, "scope", strings.Join(sorted(strings.Fields(resp.Scope)), " "), "email openid profile")
	if resp.RefreshToken == "" || resp.IDToken == "" || resp.SessionState == "" {
		t.Fatalf("token response lacks Keycloak's fields: %+v", resp)
	}
	expiresIn(t, resp, 300)
	tok := tg.verify(t, resp.AccessToken)
	iss, _ := tok.Issuer()
	eq(t, "iss", iss, tg.URL+"/realms/"+tg.Realm)
	aud, _ := tok.Audience()
	if !slices.Contains(aud, kcemu.DevAPIClientID) {
		t.Errorf("aud %v lacks the audience mapper's %q", aud, kcemu.DevAPIClientID)
	}
	eq(t, "typ", claim[string](t, tok, "typ"), "Bearer")
	eq(t, "azp", claim[string](t, tok, "azp"), kcemu.DevPublicClientID)
	eq(t, "preferred_username", claim[string](t, tok, "preferred_username"), kcemu.DevUser1)
	eq(t, "email", claim[string](t, tok, "email"), "example-user-1@example.com")
	eq(t, "sid", claim[string](t, tok, "sid"), resp.SessionState)
	if !strings.Contains(claim[string](t, tok, "scope"), "openid") {
		t.Error("scope claim lacks openid")
	}
	ra := claim[map[string]any](t, tok, "realm_access")
	if !slices.Contains(anyStrings(ra["roles"]), "default-roles-"+tg.Realm) {
		t.Errorf("realm_access %v lacks the default roles", ra)
	}
	exp, _ := tok.Expiration()
	iat, _ := tok.IssuedAt()
	eq(t, "lifespan", exp.Sub(iat).Seconds(), 300.0)
	if sub, _ := tok.Subject(); sub == "" {
		t.Error("no sub")
	}
	if jti, _ := tok.JwtID(); jti == "" {
		t.Error("no jti")
	}

	admin := tg.verify(t, tg.userToken(t, kcemu.DevAdminUser).AccessToken)
	ra = claim[map[string]any](t, admin, "realm_access")
	if !slices.Contains(anyStrings(ra["roles"]), kcemu.DevAdminRole) {
		t.Errorf("example-admin's realm_access %v lacks %q", ra, kcemu.DevAdminRole)
	}
}

// expiresIn checks a token response's lifetimes: Keycloak counts them from
// the session's start, so a second may have gone by.
func expiresIn(t *testing.T, jwt *gocloak.JWT, want int) {
	t.Helper()
	if jwt.ExpiresIn < want-2 || jwt.ExpiresIn > want {
		t.Errorf("expires_in %d, want %d (or a second or two less)", jwt.ExpiresIn, want)
	}
	if jwt.RefreshExpiresIn != 0 && (jwt.RefreshExpiresIn < 1798 || jwt.RefreshExpiresIn > 1800) {
		t.Errorf("refresh_expires_in %d, want 1800 (or a second or two less)", jwt.RefreshExpiresIn)
	}
}

func sorted(xs []string) []string {
	slices.Sort(xs)
	return xs
}

func anyStrings(v any) []string {
	var out []string
	if xs, ok := v.([]any); ok {
		for _, x := range xs {
			s, _ := x.(string)
			out = append(out, s)
		}
	}
	return out
}

func TestTokenEndpointErrors(t *testing.T) { forEachTarget(t, testTokenEndpointErrors) }

func testTokenEndpointErrors(t *testing.T, tg *target) {
	_, err := tg.GC.Login(ctx(t), kcemu.DevPublicClientID, "", tg.Realm, kcemu.DevUser1, "wrong")
	apiErr(t, err, tg.InvalidGrant, "invalid_grant: Invalid user credentials")
	_, err = tg.GC.Login(ctx(t), kcemu.DevPublicClientID, "", tg.Realm, "nobody", "x")
	apiErr(t, err, tg.InvalidGrant, "invalid_grant: Invalid user credentials")
	_, err = tg.GC.LoginClient(ctx(t), kcemu.DevWorkerClientID, "wrong-secret", tg.Realm)
	apiErr(t, err, http.StatusUnauthorized, "unauthorized_client: Invalid client or Invalid client credentials")
	_, err = tg.GC.LoginClient(ctx(t), "no-such-client", "x", tg.Realm)
	apiErr(t, err, http.StatusUnauthorized, "invalid_client: Invalid client or Invalid client credentials")
	_, err = tg.GC.LoginClient(ctx(t), kcemu.DevWorkerClientID, kcemu.DevWorkerClientSecret, "no-such-realm")
	apiErr(t, err, http.StatusNotFound, "Realm does not exist")

	form := url.Values{"grant_type": {"urn:nope"}, "client_id": {kcemu.DevPublicClientID}}
	resp, err := http.PostForm(tg.URL+"/realms/"+tg.Realm+"/protocol/openid-connect/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&body)
	eq(t, "unsupported grant status", resp.StatusCode, http.StatusBadRequest)
	eq(t, "unsupported grant error", body["error"], "unsupported_grant_type")
}

func TestClientCredentialsRefreshAndLogout(t *testing.T) {
	forEachTarget(t, testClientCredentialsRefreshAndLogout)
}

func testClientCredentialsRefreshAndLogout(t *testing.T, tg *target) {
	cc, err := tg.GC.LoginClient(ctx(t), kcemu.DevWorkerClientID, kcemu.DevWorkerClientSecret, tg.Realm)
	mustDo(t, err)
	if cc.RefreshToken != "" || cc.RefreshExpiresIn != 0 {
		t.Errorf("client_credentials should carry no refresh token: %+v", cc)
	}
	tok := tg.verify(t, cc.AccessToken)
	eq(t, "preferred_username", claim[string](t, tok, "preferred_username"), "service-account-"+kcemu.DevWorkerClientID)
	rm := claim[map[string]any](t, tok, "resource_access")["realm-management"].(map[string]any)
	if !slices.Contains(anyStrings(rm["roles"]), "manage-clients") {
		t.Errorf("worker lacks manage-clients in its token: %v", rm)
	}
	aud, _ := tok.Audience()
	if !slices.Contains(aud, "realm-management") {
		t.Errorf("aud %v lacks realm-management", aud)
	}

	user := tg.userToken(t, kcemu.DevUser2)
	refreshed, err := tg.GC.RefreshToken(ctx(t), user.RefreshToken, kcemu.DevPublicClientID, "", tg.Realm)
	mustDo(t, err)
	eq(t, "session kept across refresh", refreshed.SessionState, user.SessionState)
	tg.verify(t, refreshed.AccessToken)

	info, err := tg.GC.GetUserInfo(ctx(t), refreshed.AccessToken, tg.Realm)
	mustDo(t, err)
	eq(t, "userinfo preferred_username", *info.PreferredUsername, kcemu.DevUser2)

	mustDo(t, tg.GC.Logout(ctx(t), kcemu.DevPublicClientID, "", tg.Realm, refreshed.RefreshToken))
	_, err = tg.GC.RefreshToken(ctx(t), refreshed.RefreshToken, kcemu.DevPublicClientID, "", tg.Realm)
	apiErr(t, err, http.StatusBadRequest, "invalid_grant: Session not active") // 400 before 26.6 too: only the password grant said 401
	_, err = tg.GC.RefreshToken(ctx(t), "garbage", kcemu.DevPublicClientID, "", tg.Realm)
	apiErr(t, err, http.StatusBadRequest, "invalid_grant: Invalid refresh token")
}

func TestRealmDiscoveryAndIssuer(t *testing.T) { forEachTarget(t, testRealmDiscoveryAndIssuer) }

func testRealmDiscoveryAndIssuer(t *testing.T, tg *target) {
	iss, err := tg.GC.GetIssuer(ctx(t), tg.Realm)
	mustDo(t, err)
	eq(t, "realm", *iss.Realm, tg.Realm)
	if iss.PublicKey == nil || *iss.PublicKey == "" {
		t.Error("no public_key")
	}
	certs, err := tg.GC.GetCerts(ctx(t), tg.Realm)
	mustDo(t, err)
	if certs.Keys == nil || len(*certs.Keys) == 0 {
		t.Fatal("no keys in JWKS")
	}
	var disco map[string]any
	status, body := tg.raw(t, http.MethodGet, "/realms/master/.well-known/openid-configuration", "", nil)
	eq(t, "master discovery", status, http.StatusOK)
	mustDo(t, json.Unmarshal([]byte(body), &disco))
	eq(t, "issuer", disco["issuer"].(string), tg.URL+"/realms/master")

	realm, err := tg.GC.GetRealm(ctx(t), tg.workerToken(t), tg.Realm)
	mustDo(t, err)
	eq(t, "realm name", *realm.Realm, tg.Realm)
	eq(t, "accessTokenLifespan", *realm.AccessTokenLifespan, 300)

	// gocloak's own decoder verifies with the same keys.
	_, claims, err := tg.GC.DecodeAccessToken(ctx(t), tg.userToken(t, kcemu.DevUser1).AccessToken, tg.Realm)
	mustDo(t, err)
	eq(t, "decoded azp", (*claims)["azp"].(string), kcemu.DevPublicClientID)
}
