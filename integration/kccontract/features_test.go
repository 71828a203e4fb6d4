package kccontract

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// TestProtocolMappers: an audience mapper created through the Admin API is
// listed and puts its audience in the client's tokens; a second mapper of
// the same name conflicts; a deleted one is gone.
func TestProtocolMappers(t *testing.T) { forEachTarget(t, testProtocolMappers) }

func testProtocolMappers(t *testing.T, tg *target) {
	tok := tg.adminToken(t)
	c := ctx(t)
	demo := must(tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(kcemu.DevPublicClientID)}))(t)[0]
	must(tg.GC.CreateClient(c, tok, tg.Realm, gocloak.Client{ClientID: gocloak.StringP("ws-mapped")}))(t)
	mapper := gocloak.ProtocolMapperRepresentation{
		Name: gocloak.StringP("ws-mapped-audience"), Protocol: gocloak.StringP("openid-connect"),
		ProtocolMapper: gocloak.StringP("oidc-audience-mapper"),
		Config:         &map[string]string{"included.client.audience": "ws-mapped", "access.token.claim": "true", "id.token.claim": "false"},
	}
	id := must(tg.GC.CreateClientProtocolMapper(c, tok, tg.Realm, *demo.ID, mapper))(t)
	if id == "" {
		t.Fatal("CreateClientProtocolMapper returned no id from Location")
	}
	_, err := tg.GC.CreateClientProtocolMapper(c, tok, tg.Realm, *demo.ID, mapper)
	apiErr(t, err, http.StatusConflict, "Protocol mapper exists with same name")

	models := tg.mappers(t, tok, *demo.ID)
	if m := models[id]; m == nil || *m.ProtocolMapper != "oidc-audience-mapper" || (*m.Config)["included.client.audience"] != "ws-mapped" {
		t.Fatalf("mapper %s not listed as created: %+v", id, models)
	}
	got := must(tg.GC.GetClient(c, tok, tg.Realm, *demo.ID))(t)
	if got.ProtocolMappers == nil || !slices.ContainsFunc(*got.ProtocolMappers, func(m gocloak.ProtocolMapperRepresentation) bool { return *m.ID == id }) {
		t.Error("the client's representation lacks the new mapper")
	}
	aud, _ := tg.verify(t, tg.userToken(t, kcemu.DevUser1).AccessToken).Audience()
	if !slices.Contains(aud, "ws-mapped") || !slices.Contains(aud, kcemu.DevAPIClientID) {
		t.Errorf("aud %v lacks the new mapper's ws-mapped or the imported one's %s", aud, kcemu.DevAPIClientID)
	}

	mustDo(t, tg.GC.DeleteClientProtocolMapper(c, tok, tg.Realm, *demo.ID, id))
	if _, ok := tg.mappers(t, tok, *demo.ID)[id]; ok {
		t.Error("deleted mapper still listed")
	}
	aud, _ = tg.verify(t, tg.userToken(t, kcemu.DevUser1).AccessToken).Audience()
	if slices.Contains(aud, "ws-mapped") {
		t.Errorf("aud %v still has the deleted mapper's audience", aud)
	}
}

// mappers lists a client's protocol mappers by id (GET .../protocol-mappers/models).
func (tg *target) mappers(t *testing.T, tok, clientID string) map[string]*gocloak.ProtocolMapperRepresentation {
	t.Helper()
	status, body := tg.raw(t, http.MethodGet, "/admin/realms/"+tg.Realm+"/clients/"+clientID+"/protocol-mappers/models", tok, nil)
	eq(t, "list protocol mappers", status, http.StatusOK)
	var list []*gocloak.ProtocolMapperRepresentation
	mustDo(t, json.Unmarshal([]byte(body), &list))
	out := map[string]*gocloak.ProtocolMapperRepresentation{}
	for _, m := range list {
		out[*m.ID] = m
	}
	return out
}

// TestRealmSettings: PUT /admin/realms/{realm} changes the token lifespan,
// and the next token has it.
func TestRealmSettings(t *testing.T) { forEachTarget(t, testRealmSettings) }

func testRealmSettings(t *testing.T, tg *target) {
	tok := tg.adminToken(t)
	c := ctx(t)
	realm := must(tg.GC.GetRealm(c, tok, tg.Realm))(t)
	eq(t, "accessTokenLifespan", *realm.AccessTokenLifespan, 300)
	eq(t, "ssoSessionIdleTimeout", *realm.SsoSessionIdleTimeout, 1800)
	mustDo(t, tg.GC.UpdateRealm(c, tok, gocloak.RealmRepresentation{Realm: gocloak.StringP(tg.Realm), AccessTokenLifespan: gocloak.IntP(120)}))
	realm = must(tg.GC.GetRealm(c, tok, tg.Realm))(t)
	eq(t, "accessTokenLifespan after PUT", *realm.AccessTokenLifespan, 120)
	eq(t, "ssoSessionIdleTimeout kept by a partial PUT", *realm.SsoSessionIdleTimeout, 1800)
	eq(t, "displayName kept", *realm.DisplayName, "EOEPCA workspaces (dev)")

	jwt := tg.userToken(t, kcemu.DevUser1)
	expiresIn(t, jwt, 120)
	tokn := tg.verify(t, jwt.AccessToken)
	exp, _ := tokn.Expiration()
	iat, _ := tokn.IssuedAt()
	eq(t, "token lifespan", exp.Sub(iat).Seconds(), 120.0)

	worker := tg.workerToken(t)
	err := tg.GC.UpdateRealm(c, worker, gocloak.RealmRepresentation{Realm: gocloak.StringP(tg.Realm), AccessTokenLifespan: gocloak.IntP(60)})
	apiErr(t, err, http.StatusForbidden, "HTTP 403 Forbidden") // view-realm only
}

// TestIntrospectionAndRevocation: a confidential client introspects tokens;
// a revoked refresh token no longer refreshes, and its session's access
// token introspects as inactive.
func TestIntrospectionAndRevocation(t *testing.T) { forEachTarget(t, testIntrospectionAndRevocation) }

func testIntrospectionAndRevocation(t *testing.T, tg *target) {
	c := ctx(t)
	user := tg.userToken(t, kcemu.DevUser1)
	res := must(tg.GC.RetrospectToken(c, user.AccessToken, kcemu.DevWorkerClientID, kcemu.DevWorkerClientSecret, tg.Realm))(t)
	eq(t, "active", *res.Active, true)
	eq(t, "token type", *res.Type, "Bearer")
	intro := tg.introspect(t, user.AccessToken)
	eq(t, "username", intro["username"], any(kcemu.DevUser1))
	eq(t, "client_id", intro["client_id"], any(kcemu.DevPublicClientID))

	res = must(tg.GC.RetrospectToken(c, "garbage", kcemu.DevWorkerClientID, kcemu.DevWorkerClientSecret, tg.Realm))(t)
	eq(t, "garbage inactive", *res.Active, false)
	_, err := tg.GC.RetrospectToken(c, user.AccessToken, kcemu.DevWorkerClientID, "wrong", tg.Realm)
	apiErr(t, err, http.StatusUnauthorized, "")

	mustDo(t, tg.GC.RevokeToken(c, tg.Realm, kcemu.DevPublicClientID, "", user.RefreshToken))
	_, err = tg.GC.RefreshToken(c, user.RefreshToken, kcemu.DevPublicClientID, "", tg.Realm)
	apiErr(t, err, http.StatusBadRequest, "invalid_grant")
	res = must(tg.GC.RetrospectToken(c, user.AccessToken, kcemu.DevWorkerClientID, kcemu.DevWorkerClientSecret, tg.Realm))(t)
	eq(t, "access token of a revoked session", *res.Active, false)
	// Revoking garbage is not an error (RFC 7009 §2.2).
	mustDo(t, tg.GC.RevokeToken(c, tg.Realm, kcemu.DevPublicClientID, "", "garbage"))
}

func (tg *target) introspect(t *testing.T, token string) map[string]any {
	t.Helper()
	form := url.Values{"token": {token}, "client_id": {kcemu.DevWorkerClientID}, "client_secret": {kcemu.DevWorkerClientSecret}}
	resp, err := http.PostForm(tg.URL+"/realms/"+tg.Realm+"/protocol/openid-connect/token/introspect", form)
	mustDo(t, err)
	defer resp.Body.Close()
	var out map[string]any
	mustDo(t, json.NewDecoder(resp.Body).Decode(&out))
	return out
}

// TestUnknownPathsAnswer404: what neither models answers as Keycloak does.
func TestUnknownPathsAnswer404(t *testing.T) { forEachTarget(t, testUnknownPathsAnswer404) }

func testUnknownPathsAnswer404(t *testing.T, tg *target) {
	tok := tg.adminToken(t)
	for _, p := range []string{
		"/admin/realms/" + tg.Realm + "/no-such-thing",
		"/realms/" + tg.Realm + "/no-such-thing",
		"/realms/" + tg.Realm + "/protocol/openid-connect/no-such-endpoint",
	} {
		status, _ := tg.raw(t, http.MethodGet, p, tok, nil)
		eq(t, "GET "+p, status, http.StatusNotFound)
	}
}
