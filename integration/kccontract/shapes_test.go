package kccontract

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/Nerzal/gocloak/v13"
	"github.com/lestrrat-go/jwx/v3/jwt"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// eoepcaClient is a sign-in client the test adds to the compact realm with
// Keycloak's defaults (fullScopeAllowed on): EOEPCA's token shape.
const eoepcaClient = "demo-eoepca"

// shapeCounts are the numbers of workspaces the user is made a member of,
// in turn; a real Keycloak takes about a second per ten.
var shapeCounts = []int{0, 10, 30}

// TestTokenShapes: a user in many workspaces. Through a sign-in client
// with fullScopeAllowed on (EOEPCA's shape) every workspace is in aud and
// resource_access and the token grows with each; through the compact realm's
// sign-in client (fullScopeAllowed off, the admin realm role in scope, as
// imported from kcemu.DevRealmShaped) the token is the same size at any
// count and still says who is a platform admin.
func TestTokenShapes(t *testing.T) {
	forEachTargetWith(t, func(name string) ([]byte, error) {
		return kcemu.DevRealmShaped(name, kcemu.TokenShapeCompact)
	}, testTokenShapes)
}

func testTokenShapes(t *testing.T, tg *target) {
	tok := tg.adminToken(t)
	c := ctx(t)
	demo := tg.client(t, tok, kcemu.DevPublicClientID)
	eq(t, "imported fullScopeAllowed", *demo.FullScopeAllowed, false)
	status, body := tg.raw(t, http.MethodGet, "/admin/realms/"+tg.Realm+"/clients/"+*demo.ID+"/scope-mappings/realm", tok, nil)
	eq(t, "list realm scope mappings", status, http.StatusOK)
	if !strings.Contains(body, `"name":"`+kcemu.DevAdminRole+`"`) {
		t.Fatalf("imported scope mapping lacks %s: %s", kcemu.DevAdminRole, body)
	}
	must(tg.GC.CreateClient(c, tok, tg.Realm, gocloak.Client{
		ClientID: gocloak.StringP(eoepcaClient), PublicClient: gocloak.BoolP(true),
		DirectAccessGrantsEnabled: gocloak.BoolP(true), StandardFlowEnabled: gocloak.BoolP(false),
		ProtocolMappers: &[]gocloak.ProtocolMapperRepresentation{{
			Name: gocloak.StringP("workspace-api-audience"), Protocol: gocloak.StringP("openid-connect"),
			ProtocolMapper: gocloak.StringP("oidc-audience-mapper"),
			Config:         &map[string]string{"included.client.audience": kcemu.DevAPIClientID, "access.token.claim": "true"},
		}},
	}))(t)
	eq(t, "a new client's fullScopeAllowed", *tg.client(t, tok, eoepcaClient).FullScopeAllowed, true)

	kc, err := keycloak.New(keycloak.Config{BaseURL: tg.URL, Realm: tg.Realm,
		ClientID: kcemu.DevWorkerClientID, ClientSecret: kcemu.DevWorkerClientSecret}, nil)
	mustDo(t, err)
	var eoepcaLen, compactLen []int
	made := 0
	for _, n := range shapeCounts {
		for ; made < n; made++ {
			ws := fmt.Sprintf("ws-shape-%03d", made)
			must(kc.EnsureClient(c, ws))(t)
			mustDo(t, kc.EnsureClientRoles(c, ws, events.Roles...))
			mustDo(t, kc.GrantClientRole(c, ws, kcemu.DevUser1, events.RoleAccess))
		}
		full := tg.login(t, eoepcaClient, kcemu.DevUser1)
		wantWorkspaces(t, tg.verify(t, full), n)
		compact := tg.login(t, kcemu.DevPublicClientID, kcemu.DevUser1)
		wantCompact(t, tg.verify(t, compact), nil)
		eoepcaLen, compactLen = append(eoepcaLen, len(full)), append(compactLen, len(compact))
		t.Logf("%d workspaces: EOEPCA token %d bytes, compact %d bytes", n, len(full), len(compact))
	}
	for i := 1; i < len(shapeCounts); i++ {
		if eoepcaLen[i] <= eoepcaLen[i-1] {
			t.Errorf("EOEPCA token did not grow from %d to %d workspaces: %v", shapeCounts[i-1], shapeCounts[i], eoepcaLen)
		}
		// jti and sid may differ by a character or two between tokens.
		if d := compactLen[i] - compactLen[0]; d < -8 || d > 8 {
			t.Errorf("compact token changed size with %d workspaces: %v", shapeCounts[i], compactLen)
		}
	}
	wantCompact(t, tg.verify(t, tg.login(t, kcemu.DevPublicClientID, kcemu.DevAdminUser)), []string{kcemu.DevAdminRole})
}

// TestScopeMappings: a client with fullScopeAllowed turned off through the
// Admin API issues tokens with only the roles in its scope mapping: a realm
// role named by id, a client role by name; an unknown one is 404 and
// changes nothing; a removed one leaves the tokens.
func TestScopeMappings(t *testing.T) { forEachTarget(t, testScopeMappings) }

func testScopeMappings(t *testing.T, tg *target) {
	tok := tg.adminToken(t)
	c := ctx(t)
	demo := tg.client(t, tok, kcemu.DevPublicClientID)
	kc, err := keycloak.New(keycloak.Config{BaseURL: tg.URL, Realm: tg.Realm,
		ClientID: kcemu.DevWorkerClientID, ClientSecret: kcemu.DevWorkerClientSecret}, nil)
	mustDo(t, err)
	for _, ws := range []string{"ws-scoped-a", "ws-scoped-b"} {
		must(kc.EnsureClient(c, ws))(t)
		mustDo(t, kc.EnsureClientRoles(c, ws, events.Roles...))
		mustDo(t, kc.GrantClientRole(c, ws, kcemu.DevAdminUser, events.RoleAdmin))
	}
	wantWorkspaces(t, tg.verify(t, tg.login(t, kcemu.DevPublicClientID, kcemu.DevAdminUser)), 2)

	demo.FullScopeAllowed = gocloak.BoolP(false)
	mustDo(t, tg.GC.UpdateClient(c, tok, tg.Realm, *demo))
	wantCompact(t, tg.verify(t, tg.login(t, kcemu.DevPublicClientID, kcemu.DevAdminUser)), nil)

	base := "/admin/realms/" + tg.Realm + "/clients/" + *demo.ID + "/scope-mappings"
	adminRole := must(tg.GC.GetRealmRole(c, tok, tg.Realm, kcemu.DevAdminRole))(t)
	status, body := tg.raw(t, http.MethodPost, base+"/realm", tok, []byte(`[{"id":"no-such-role"}]`))
	eq(t, "map an unknown realm role: "+body, status, http.StatusNotFound)
	status, body = tg.raw(t, http.MethodPost, base+"/realm", tok, []byte(`[{"id":"`+*adminRole.ID+`","name":"`+*adminRole.Name+`"}]`))
	eq(t, "map the admin realm role: "+body, status, http.StatusNoContent)
	wsA := tg.client(t, tok, "ws-scoped-a")
	status, body = tg.raw(t, http.MethodPost, base+"/clients/"+*wsA.ID, tok, []byte(`[{"name":"no-such-role"}]`))
	eq(t, "map an unknown client role: "+body, status, http.StatusNotFound)
	status, body = tg.raw(t, http.MethodPost, base+"/clients/"+*wsA.ID, tok, []byte(`[{"name":"`+events.RoleAdmin+`"}]`))
	eq(t, "map ws-scoped-a's ws_admin: "+body, status, http.StatusNoContent)
	status, body = tg.raw(t, http.MethodGet, base+"/clients/"+*wsA.ID, tok, nil)
	eq(t, "list ws-scoped-a's roles in scope", status, http.StatusOK)
	if !strings.Contains(body, `"name":"`+events.RoleAdmin+`"`) {
		t.Errorf("ws-scoped-a's scope mapping lacks %s: %s", events.RoleAdmin, body)
	}
	status, body = tg.raw(t, http.MethodGet, base+"/clients/no-such-client", tok, nil)
	eq(t, "scope of an unknown client: "+body, status, http.StatusNotFound)

	adm := tg.verify(t, tg.login(t, kcemu.DevPublicClientID, kcemu.DevAdminUser))
	eq(t, "realm roles in scope", strings.Join(realmRoles(t, adm), ","), kcemu.DevAdminRole)
	ra := claim[map[string]any](t, adm, "resource_access")
	if _, ok := ra["ws-scoped-a"]; !ok || len(ra) != 1 {
		t.Errorf("resource_access %v: want ws-scoped-a alone", ra)
	}
	aud, _ := adm.Audience()
	eq(t, "aud", strings.Join(sorted(aud), ","), kcemu.DevAPIClientID+",ws-scoped-a")

	status, body = tg.raw(t, http.MethodDelete, base+"/clients/"+*wsA.ID, tok, []byte(`[{"name":"`+events.RoleAdmin+`"}]`))
	eq(t, "unmap ws-scoped-a's ws_admin: "+body, status, http.StatusNoContent)
	wantCompact(t, tg.verify(t, tg.login(t, kcemu.DevPublicClientID, kcemu.DevAdminUser)), []string{kcemu.DevAdminRole})
}

func (tg *target) client(t *testing.T, tok, clientID string) *gocloak.Client {
	t.Helper()
	cs := must(tg.GC.GetClients(ctx(t), tok, tg.Realm, gocloak.GetClientsParams{ClientID: &clientID}))(t)
	if len(cs) != 1 {
		t.Fatalf("client %s: found %d", clientID, len(cs))
	}
	return cs[0]
}

// login is a password grant of username through clientID, with the
// default scopes; it returns the access token.
func (tg *target) login(t *testing.T, clientID, username string) string {
	t.Helper()
	jwt, err := tg.GC.Login(ctx(t), clientID, "", tg.Realm, username, kcemu.DevPassword)
	if err != nil {
		t.Fatalf("Login %s through %s: %v", username, clientID, err)
	}
	return jwt.AccessToken
}

// wantWorkspaces checks that tok carries n workspace clients (ws-*) in aud
// and in resource_access.
func wantWorkspaces(t *testing.T, tok jwt.Token, n int) {
	t.Helper()
	aud, _ := tok.Audience()
	inAud := slices.DeleteFunc(slices.Clone(aud), func(a string) bool { return !strings.HasPrefix(a, "ws-") })
	var ra map[string]any
	_ = tok.Get("resource_access", &ra)
	inRA := 0
	for k := range ra {
		if strings.HasPrefix(k, "ws-") {
			inRA++
		}
	}
	if len(inAud) != n || inRA != n {
		t.Fatalf("%d workspaces in aud and %d in resource_access, want %d", len(inAud), inRA, n)
	}
}

// wantCompact checks the compact shape: aud is the API alone, no
// resource_access, realm_access exactly roles (absent when none).
func wantCompact(t *testing.T, tok jwt.Token, roles []string) {
	t.Helper()
	aud, _ := tok.Audience()
	eq(t, "aud", strings.Join(aud, ","), kcemu.DevAPIClientID)
	if tok.Has("resource_access") {
		var ra any
		_ = tok.Get("resource_access", &ra)
		t.Fatalf("resource_access %v in a compact token", ra)
	}
	eq(t, "realm_access roles", strings.Join(realmRoles(t, tok), ","), strings.Join(roles, ","))
}

func realmRoles(t *testing.T, tok jwt.Token) []string {
	t.Helper()
	if !tok.Has("realm_access") {
		return nil
	}
	return sorted(anyStrings(claim[map[string]any](t, tok, "realm_access")["roles"]))
}

// TestWorkspaceScopeOnDemand: with workspace scopes on, each workspace has
// a client scope "workspace:<name>", optional on the sign-in client. In the
// compact realm, a token asked for with it carries that one workspace in
// aud and resource_access, whatever the number of memberships; an unknown
// scope refuses the request; deleting the workspace deletes its scope; a
// scope of that name made by someone else is never adopted.
func TestWorkspaceScopeOnDemand(t *testing.T) {
	forEachTargetWith(t, func(name string) ([]byte, error) {
		return kcemu.DevRealmShaped(name, kcemu.TokenShapeCompact)
	}, testWorkspaceScopeOnDemand)
}

func testWorkspaceScopeOnDemand(t *testing.T, tg *target) {
	c := ctx(t)
	kc, err := keycloak.New(keycloak.Config{BaseURL: tg.URL, Realm: tg.Realm, ClientID: kcemu.DevWorkerClientID,
		ClientSecret: kcemu.DevWorkerClientSecret, WorkspaceScopeClients: []string{kcemu.DevPublicClientID}}, nil)
	mustDo(t, err)
	const n = 30
	for i := range n {
		ws := fmt.Sprintf("ws-demand-%02d", i)
		must(kc.EnsureClient(c, ws))(t)
		for range 2 { // a step run twice leaves one scope, mapped once
			mustDo(t, kc.EnsureClientRoles(c, ws, events.Roles...))
		}
		mustDo(t, kc.GrantClientRole(c, ws, kcemu.DevUser1, events.RoleAccess))
	}
	plain := tg.login(t, kcemu.DevPublicClientID, kcemu.DevUser1)
	wantCompact(t, tg.verify(t, plain), nil)
	one := tg.loginScope(t, kcemu.DevUser1, "openid "+keycloak.WorkspaceScopePrefix+"ws-demand-07")
	tok := tg.verify(t, one)
	aud, _ := tok.Audience()
	eq(t, "aud", strings.Join(sorted(aud), ","), kcemu.DevAPIClientID+",ws-demand-07")
	ra := claim[map[string]any](t, tok, "resource_access")
	eq(t, "resource_access", fmt.Sprint(ra), "map[ws-demand-07:map[roles:[ws_access]]]")
	if !strings.Contains(claim[string](t, tok, "scope"), "workspace:ws-demand-07") {
		t.Errorf("scope claim %q lacks the workspace's scope", claim[string](t, tok, "scope"))
	}
	two := tg.verify(t, tg.loginScope(t, kcemu.DevUser1, "workspace:ws-demand-01 workspace:ws-demand-02"))
	wantWorkspaces(t, two, 2)
	// Another user holds no role of the workspace: its scope adds nothing.
	wantCompact(t, tg.verify(t, tg.loginScope(t, kcemu.DevUser2, "workspace:ws-demand-07")), nil)
	t.Logf("%d workspaces: compact token %d bytes, with one workspace asked for %d bytes", n, len(plain), len(one))

	tg.wantInvalidScope(t, "openid workspace:no-such-workspace")
	mustDo(t, kc.DeleteClient(c, "ws-demand-07"))
	tg.wantInvalidScope(t, "workspace:ws-demand-07")

	tok2 := tg.adminToken(t)
	status, body := tg.raw(t, http.MethodPost, "/admin/realms/"+tg.Realm+"/client-scopes", tok2,
		[]byte(`{"name":"workspace:ws-foreign","protocol":"openid-connect"}`))
	eq(t, "a foreign scope: "+body, status, http.StatusCreated)
	must(kc.EnsureClient(c, "ws-foreign"))(t)
	err = kc.EnsureClientRoles(c, "ws-foreign", events.Roles...)
	if !errors.Is(err, sagas.ErrNotOurs) || !sagas.IsPermanent(err) {
		t.Fatalf("a foreign scope of the workspace's name: %v, want a permanent ErrNotOurs", err)
	}
}

// TestWorkspaceScopeAddedToAnOlderWorkspace: a workspace made before
// workspace scopes were turned on has none, and the inspector says so;
// the repair a reconcile makes (EnsureClientRoles) gives it one that
// tokens can ask for, and removing one role from the scope's mapping by
// hand shows as incomplete again.
func TestWorkspaceScopeAddedToAnOlderWorkspace(t *testing.T) {
	forEachTargetWith(t, func(name string) ([]byte, error) {
		return kcemu.DevRealmShaped(name, kcemu.TokenShapeCompact)
	}, testWorkspaceScopeAddedToAnOlderWorkspace)
}

func testWorkspaceScopeAddedToAnOlderWorkspace(t *testing.T, tg *target) {
	c := ctx(t)
	cfg := keycloak.Config{BaseURL: tg.URL, Realm: tg.Realm, ClientID: kcemu.DevWorkerClientID, ClientSecret: kcemu.DevWorkerClientSecret}
	before, err := keycloak.New(cfg, nil)
	mustDo(t, err)
	const ws = "ws-older"
	must(before.EnsureClient(c, ws))(t)
	mustDo(t, before.EnsureClientRoles(c, ws, events.Roles...))
	mustDo(t, before.GrantClientRole(c, ws, kcemu.DevUser1, events.RoleAccess))
	if ok, err := before.WorkspaceScopeComplete(c, ws); !ok || err != nil {
		t.Fatalf("without workspace scopes: complete %v (err %v), want true", ok, err)
	}

	cfg.WorkspaceScopeClients = []string{kcemu.DevPublicClientID}
	kc, err := keycloak.New(cfg, nil)
	mustDo(t, err)
	if ok, err := kc.WorkspaceScopeComplete(c, ws); ok || err != nil {
		t.Fatalf("an older workspace: complete %v (err %v), want false", ok, err)
	}
	tg.wantInvalidScope(t, "workspace:"+ws)
	mustDo(t, kc.EnsureClientRoles(c, ws, events.Roles...))
	if ok, err := kc.WorkspaceScopeComplete(c, ws); !ok || err != nil {
		t.Fatalf("after the repair: complete %v (err %v), want true", ok, err)
	}
	tok := tg.verify(t, tg.loginScope(t, kcemu.DevUser1, "openid workspace:"+ws))
	eq(t, "resource_access", fmt.Sprint(claim[map[string]any](t, tok, "resource_access")), "map[ws-older:map[roles:[ws_access]]]")

	admin := tg.adminToken(t)
	scopeID, clientUUID := tg.scopeAndClientIDs(t, admin, "workspace:"+ws, ws)
	role, err := tg.GC.GetClientRole(c, admin, tg.Realm, clientUUID, events.RoleViewer)
	mustDo(t, err)
	mustDo(t, tg.GC.DeleteClientScopesScopeMappingsClientRoles(c, admin, tg.Realm, scopeID, clientUUID, []gocloak.Role{*role}))
	if ok, err := kc.WorkspaceScopeComplete(c, ws); ok || err != nil {
		t.Fatalf("a role unmapped by hand: complete %v (err %v), want false", ok, err)
	}
}

// scopeAndClientIDs finds the ids of the client scope named scope and of
// the client clientID, as an operator's tool would.
func (tg *target) scopeAndClientIDs(t *testing.T, admin, scope, clientID string) (string, string) {
	t.Helper()
	scopes, err := tg.GC.GetClientScopes(ctx(t), admin, tg.Realm)
	mustDo(t, err)
	var scopeID string
	for _, sc := range scopes {
		if gocloak.PString(sc.Name) == scope {
			scopeID = gocloak.PString(sc.ID)
		}
	}
	clients, err := tg.GC.GetClients(ctx(t), admin, tg.Realm, gocloak.GetClientsParams{ClientID: &clientID})
	mustDo(t, err)
	if scopeID == "" || len(clients) != 1 {
		t.Fatalf("scope %q id %q, %d clients %q", scope, scopeID, len(clients), clientID)
	}
	return scopeID, gocloak.PString(clients[0].ID)
}

// loginScope is a password grant through the dev realm's public client
// asking for scope; it returns the access token.
func (tg *target) loginScope(t *testing.T, username, scope string) string {
	t.Helper()
	status, body := tg.tokenRequest(t, username, scope)
	if status != http.StatusOK {
		t.Fatalf("token of %s with scope %q: %d %s", username, scope, status, body)
	}
	var resp struct {
		AccessToken string `json:"access_token"`
	}
	mustDo(t, json.Unmarshal([]byte(body), &resp))
	return resp.AccessToken
}

func (tg *target) wantInvalidScope(t *testing.T, scope string) {
	t.Helper()
	status, body := tg.tokenRequest(t, kcemu.DevUser1, scope)
	eq(t, "token with scope "+scope, status, http.StatusBadRequest)
	var e struct{ Error, ErrorDescription string }
	_ = json.Unmarshal([]byte(strings.Replace(body, "error_description", "errorDescription", 1)), &e)
	eq(t, "error", e.Error, "invalid_scope")
	eq(t, "error_description", e.ErrorDescription, "Invalid scopes: "+scope)
}

func (tg *target) tokenRequest(t *testing.T, username, scope string) (int, string) {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "client_id": {kcemu.DevPublicClientID}, "username": {username},
		"password": {kcemu.DevPassword}, "scope": {scope}}
	resp, err := http.PostForm(tg.URL+"/realms/"+tg.Realm+"/protocol/openid-connect/token", form)
	mustDo(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
