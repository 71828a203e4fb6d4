package kccontract

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/Nerzal/gocloak/v13"

	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

func TestClientLifecycleAsWorker(t *testing.T) { forEachTarget(t, testClientLifecycleAsWorker) }

func testClientLifecycleAsWorker(t *testing.T, tg *target) {
	tok := tg.workerToken(t)
	c := ctx(t)
	attrs := map[string]string{"eo-workspaces.owned": "true", "eo-workspaces.workspace": "ws-alpha", "saml_idp_initiated_sso_url_name": "alpha"}
	id, err := tg.GC.CreateClient(c, tok, tg.Realm, gocloak.Client{
		ClientID: gocloak.StringP("ws-alpha"), Attributes: &attrs,
		ServiceAccountsEnabled: gocloak.BoolP(false),
	})
	mustDo(t, err)
	if id == "" || id == "ws-alpha" {
		t.Fatalf("CreateClient returned %q, want the new client's id from Location", id)
	}
	got, err := tg.GC.GetClient(c, tok, tg.Realm, id)
	mustDo(t, err)
	eq(t, "clientId", *got.ClientID, "ws-alpha")
	eq(t, "owned attribute", (*got.Attributes)["eo-workspaces.owned"], "true")
	eq(t, "confidential by default", *got.PublicClient, false)
	if got.Secret == nil || *got.Secret == "" {
		t.Error("a confidential client gets a secret")
	}

	_, err = tg.GC.CreateClient(c, tok, tg.Realm, gocloak.Client{ClientID: gocloak.StringP("ws-alpha")})
	apiErr(t, err, http.StatusConflict, "Client ws-alpha already exists")

	list, err := tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP("ws-alpha")})
	mustDo(t, err)
	if len(list) != 1 || *list[0].ID != id {
		t.Fatalf("clientId filter: %d clients", len(list))
	}
	list, err = tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP("ws-al"), Search: gocloak.BoolP(true)})
	mustDo(t, err)
	eq(t, "search=true substring matches", len(list), 1)
	list, err = tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP("ws-al")})
	mustDo(t, err)
	eq(t, "exact clientId with a prefix matches nothing", len(list), 0)
	list, err = tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{SearchableAttributes: gocloak.StringP("saml_idp_initiated_sso_url_name:alpha")})
	mustDo(t, err)
	eq(t, "attribute query (q)", len(list), 1)
	// Only the attributes listed by --spi-client--jpa--searchable-attributes
	// (and two SAML ones) may be searched: the worker must not rely on q.
	_, err = tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{SearchableAttributes: gocloak.StringP("eo-workspaces.owned:true")})
	apiErr(t, err, http.StatusBadRequest, "invalid_request: Attributes [eo-workspaces.owned] not allowed for search")

	got.Description = gocloak.StringP("updated")
	(*got.Attributes)["eo-workspaces.step"] = "roles"
	mustDo(t, tg.GC.UpdateClient(c, tok, tg.Realm, *got))
	again, err := tg.GC.GetClient(c, tok, tg.Realm, id)
	mustDo(t, err)
	eq(t, "description", *again.Description, "updated")
	eq(t, "attribute added by update", (*again.Attributes)["eo-workspaces.step"], "roles")
	eq(t, "attribute kept by update", (*again.Attributes)["eo-workspaces.workspace"], "ws-alpha")

	secret, err := tg.GC.GetClientSecret(c, tok, tg.Realm, id)
	mustDo(t, err)
	eq(t, "secret type", *secret.Type, "secret")
	eq(t, "secret matches the client", *secret.Value, *got.Secret)
	regen, err := tg.GC.RegenerateClientSecret(c, tok, tg.Realm, id)
	mustDo(t, err)
	if *regen.Value == *secret.Value {
		t.Error("regenerated secret is unchanged")
	}

	mustDo(t, tg.GC.DeleteClient(c, tok, tg.Realm, id))
	_, err = tg.GC.GetClient(c, tok, tg.Realm, id)
	apiErr(t, err, http.StatusNotFound, "Could not find client")
	apiErr(t, tg.GC.DeleteClient(c, tok, tg.Realm, id), http.StatusNotFound, "Could not find client")
}

func TestServiceAccountUser(t *testing.T) { forEachTarget(t, testServiceAccountUser) }

func testServiceAccountUser(t *testing.T, tg *target) {
	tok := tg.adminToken(t)
	c := ctx(t)
	worker, err := tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(kcemu.DevWorkerClientID)})
	mustDo(t, err)
	if len(worker) != 1 {
		t.Fatalf("worker client: %d found", len(worker))
	}
	sa, err := tg.GC.GetClientServiceAccount(c, tok, tg.Realm, *worker[0].ID)
	mustDo(t, err)
	eq(t, "service account username", *sa.Username, "service-account-"+kcemu.DevWorkerClientID)

	id := must(tg.GC.CreateClient(c, tok, tg.Realm, gocloak.Client{ClientID: gocloak.StringP("ws-sa"), ServiceAccountsEnabled: gocloak.BoolP(true)}))(t)
	sa, err = tg.GC.GetClientServiceAccount(c, tok, tg.Realm, id)
	mustDo(t, err)
	eq(t, "created service account", *sa.Username, "service-account-ws-sa")

	demo := must(tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(kcemu.DevPublicClientID)}))(t)
	_, err = tg.GC.GetClientServiceAccount(c, tok, tg.Realm, *demo[0].ID)
	apiErr(t, err, http.StatusBadRequest, "Service account not enabled for the client 'demo'")
}

func TestClientRoles(t *testing.T) { forEachTarget(t, testClientRoles) }

func testClientRoles(t *testing.T, tg *target) {
	tok := tg.workerToken(t)
	c := ctx(t)
	id := must(tg.GC.CreateClient(c, tok, tg.Realm, gocloak.Client{ClientID: gocloak.StringP("ws-beta")}))(t)
	for _, name := range []string{"ws_access", "ws_admin"} {
		got, err := tg.GC.CreateClientRole(c, tok, tg.Realm, id, gocloak.Role{Name: gocloak.StringP(name)})
		mustDo(t, err)
		eq(t, "Location names the role", got, name)
	}
	_, err := tg.GC.CreateClientRole(c, tok, tg.Realm, id, gocloak.Role{Name: gocloak.StringP("ws_access")})
	apiErr(t, err, http.StatusConflict, "Role with name ws_access already exists")

	roles, err := tg.GC.GetClientRoles(c, tok, tg.Realm, id, gocloak.GetRoleParams{})
	mustDo(t, err)
	var names []string
	for _, r := range roles {
		names = append(names, *r.Name)
		eq(t, "clientRole", *r.ClientRole, true)
		eq(t, "containerId", *r.ContainerID, id)
	}
	slices.Sort(names)
	eq(t, "roles", len(names), 2)
	eq(t, "first role", names[0], "ws_access")

	role, err := tg.GC.GetClientRole(c, tok, tg.Realm, id, "ws_admin")
	mustDo(t, err)
	eq(t, "role name", *role.Name, "ws_admin")
	byID, err := tg.GC.GetClientRoleByID(c, tok, tg.Realm, *role.ID)
	mustDo(t, err)
	eq(t, "roles-by-id", *byID.Name, "ws_admin")

	mustDo(t, tg.GC.DeleteClientRole(c, tok, tg.Realm, id, "ws_admin"))
	_, err = tg.GC.GetClientRole(c, tok, tg.Realm, id, "ws_admin")
	apiErr(t, err, http.StatusNotFound, "Could not find role")
	_, err = tg.GC.GetClientRoles(c, tok, tg.Realm, "no-such-id", gocloak.GetRoleParams{})
	apiErr(t, err, http.StatusNotFound, "Could not find client")
}

func TestRealmRoles(t *testing.T) { forEachTarget(t, testRealmRoles) }

func testRealmRoles(t *testing.T, tg *target) {
	tok := tg.adminToken(t)
	c := ctx(t)
	_, err := tg.GC.CreateRealmRole(c, tok, tg.Realm, gocloak.Role{Name: gocloak.StringP("ops")})
	mustDo(t, err)
	_, err = tg.GC.CreateRealmRole(c, tok, tg.Realm, gocloak.Role{Name: gocloak.StringP("ops")})
	apiErr(t, err, http.StatusConflict, "Role with name ops already exists")
	roles := must(tg.GC.GetRealmRoles(c, tg.workerToken(t), tg.Realm, gocloak.GetRoleParams{}))(t)
	var names []string
	for _, r := range roles {
		names = append(names, *r.Name)
	}
	for _, want := range []string{"ops", kcemu.DevAdminRole, "offline_access", "default-roles-" + tg.Realm} {
		if !slices.Contains(names, want) {
			t.Errorf("realm roles %v lack %q", names, want)
		}
	}
	admins := must(tg.GC.GetUsersByRoleName(c, tok, tg.Realm, kcemu.DevAdminRole, gocloak.GetUsersByRoleParams{}))(t)
	if len(admins) != 1 || *admins[0].Username != kcemu.DevAdminUser {
		t.Fatalf("holders of %s: %d", kcemu.DevAdminRole, len(admins))
	}
	_, err = tg.GC.GetRealmRole(c, tok, tg.Realm, "no-such-role")
	apiErr(t, err, http.StatusNotFound, "Could not find role")
}

func TestUsersAndRoleMappings(t *testing.T) { forEachTarget(t, testUsersAndRoleMappings) }

func testUsersAndRoleMappings(t *testing.T, tg *target) {
	tok := tg.workerToken(t)
	c := ctx(t)
	uid, err := tg.GC.CreateUser(c, tok, tg.Realm, gocloak.User{
		Username: gocloak.StringP("Alice"), Email: gocloak.StringP("alice@example.com"),
		FirstName: gocloak.StringP("Alice"), LastName: gocloak.StringP("Liddell"), Enabled: gocloak.BoolP(true),
	})
	mustDo(t, err)
	_, err = tg.GC.CreateUser(c, tok, tg.Realm, gocloak.User{Username: gocloak.StringP("alice"), Enabled: gocloak.BoolP(true)})
	apiErr(t, err, http.StatusConflict, "User exists with same username")

	u, err := tg.GC.GetUserByID(c, tok, tg.Realm, uid)
	mustDo(t, err)
	eq(t, "username is lowercased", *u.Username, "alice")
	users := must(tg.GC.GetUsers(c, tok, tg.Realm, gocloak.GetUsersParams{Username: gocloak.StringP("alice"), Exact: gocloak.BoolP(true)}))(t)
	eq(t, "exact username search", len(users), 1)
	users = must(tg.GC.GetUsers(c, tok, tg.Realm, gocloak.GetUsersParams{Username: gocloak.StringP("example-user")}))(t)
	eq(t, "substring username search", len(users), 2)
	users = must(tg.GC.GetUsers(c, tok, tg.Realm, gocloak.GetUsersParams{Search: gocloak.StringP("example"), Max: gocloak.IntP(2)}))(t)
	eq(t, "search with max", len(users), 2)
	mustDo(t, tg.GC.SetPassword(c, tok, uid, tg.Realm, "s3cret", false))

	wsID := must(tg.GC.CreateClient(c, tok, tg.Realm, gocloak.Client{ClientID: gocloak.StringP("ws-gamma")}))(t)
	must(tg.GC.CreateClientRole(c, tok, tg.Realm, wsID, gocloak.Role{Name: gocloak.StringP("ws_access")}))(t)
	access := must(tg.GC.GetClientRole(c, tok, tg.Realm, wsID, "ws_access"))(t)

	err = tg.GC.AddClientRolesToUser(c, tok, tg.Realm, wsID, uid, []gocloak.Role{{Name: gocloak.StringP("ws_access")}})
	apiErr(t, err, http.StatusNotFound, "Role not found") // Keycloak wants the role's id too
	mustDo(t, tg.GC.AddClientRolesToUser(c, tok, tg.Realm, wsID, uid, []gocloak.Role{*access}))
	mustDo(t, tg.GC.AddClientRolesToUser(c, tok, tg.Realm, wsID, uid, []gocloak.Role{*access})) // idempotent

	held := must(tg.GC.GetClientRolesByUserID(c, tok, tg.Realm, wsID, uid))(t)
	if len(held) != 1 || *held[0].Name != "ws_access" {
		t.Fatalf("client role mappings: %d", len(held))
	}
	mappings := must(tg.GC.GetRoleMappingByUserID(c, tok, tg.Realm, uid))(t)
	if m := mappings.ClientMappings["ws-gamma"]; m == nil || len(*m.Mappings) != 1 {
		t.Fatalf("role-mappings lack ws-gamma: %+v", mappings.ClientMappings)
	}
	members := must(tg.GC.GetUsersByClientRoleName(c, tok, tg.Realm, wsID, "ws_access", gocloak.GetUsersByRoleParams{}))(t)
	if len(members) != 1 || *members[0].ID != uid {
		t.Fatalf("holders of ws_access: %d", len(members))
	}

	// Keycloak's audience resolution: holding a role of ws-gamma puts
	// ws-gamma in aud and resource_access.
	jwt, err := tg.GC.Login(c, kcemu.DevPublicClientID, "", tg.Realm, "alice", "s3cret")
	mustDo(t, err)
	tokn := tg.verify(t, jwt.AccessToken)
	aud, _ := tokn.Audience()
	if !slices.Contains(aud, "ws-gamma") {
		t.Errorf("aud %v lacks ws-gamma", aud)
	}
	ra := claim[map[string]any](t, tokn, "resource_access")
	ws, _ := ra["ws-gamma"].(map[string]any)
	if !slices.Equal(anyStrings(ws["roles"]), []string{"ws_access"}) {
		t.Errorf("resource_access.ws-gamma = %v", ws)
	}

	adminRole := must(tg.GC.GetRealmRole(c, tok, tg.Realm, kcemu.DevAdminRole))(t)
	mustDo(t, tg.GC.AddRealmRoleToUser(c, tok, tg.Realm, uid, []gocloak.Role{*adminRole}))
	realmRoles := must(tg.GC.GetRealmRolesByUserID(c, tok, tg.Realm, uid))(t)
	var rn []string
	for _, r := range realmRoles {
		rn = append(rn, *r.Name)
	}
	if !slices.Contains(rn, kcemu.DevAdminRole) {
		t.Errorf("realm role mappings %v lack %s", rn, kcemu.DevAdminRole)
	}
	mustDo(t, tg.GC.DeleteRealmRoleFromUser(c, tok, tg.Realm, uid, []gocloak.Role{*adminRole}))

	mustDo(t, tg.GC.DeleteClientRolesFromUser(c, tok, tg.Realm, wsID, uid, []gocloak.Role{*access}))
	held = must(tg.GC.GetClientRolesByUserID(c, tok, tg.Realm, wsID, uid))(t)
	eq(t, "mappings after removal", len(held), 0)

	mustDo(t, tg.GC.DeleteUser(c, tok, tg.Realm, uid))
	_, err = tg.GC.GetUserByID(c, tok, tg.Realm, uid)
	apiErr(t, err, http.StatusNotFound, "User not found")
}

func TestAdminAuthorisation(t *testing.T) { forEachTarget(t, testAdminAuthorisation) }

func testAdminAuthorisation(t *testing.T, tg *target) {
	path := "/admin/realms/" + tg.Realm + "/clients"
	status, body := tg.raw(t, http.MethodGet, path, "", nil)
	eq(t, "no token", status, http.StatusUnauthorized)
	eq(t, "no token body", body, `{"error":"HTTP 401 Unauthorized"}`)
	status, _ = tg.raw(t, http.MethodGet, path, "not-a-token", nil)
	eq(t, "garbage token", status, http.StatusUnauthorized)

	user := tg.userToken(t, kcemu.DevUser1).AccessToken
	status, body = tg.raw(t, http.MethodGet, path, user, nil)
	eq(t, "user without realm-management roles", status, http.StatusForbidden)
	eq(t, "403 body", body, `{"error":"HTTP 403 Forbidden"}`)

	worker := tg.workerToken(t)
	_, err := tg.GC.GetClients(ctx(t), worker, "master", gocloak.GetClientsParams{})
	apiErr(t, err, http.StatusForbidden, "HTTP 403 Forbidden")
	_, err = tg.GC.CreateRealmRole(ctx(t), worker, tg.Realm, gocloak.Role{Name: gocloak.StringP("nope")})
	apiErr(t, err, http.StatusForbidden, "HTTP 403 Forbidden") // manage-realm is not granted
	_, err = tg.GC.GetClients(ctx(t), tg.adminToken(t), "no-such-realm", gocloak.GetClientsParams{})
	apiErr(t, err, http.StatusNotFound, "Realm not found.")
}

// TestGetRealmsListsTheRealms: gocloak's GetRealms asks GET /admin/realms/.
func TestGetRealmsListsTheRealms(t *testing.T) { forEachTarget(t, testGetRealmsListsTheRealms) }

func testGetRealmsListsTheRealms(t *testing.T, tg *target) {
	realms, err := tg.GC.GetRealms(ctx(t), tg.adminToken(t))
	mustDo(t, err)
	var names []string
	for _, r := range realms {
		names = append(names, *r.Realm)
	}
	if !slices.Contains(names, "master") || !slices.Contains(names, tg.Realm) {
		t.Fatalf("realms %v lack master or %s", names, tg.Realm)
	}
}

// TestServiceAccountUsersInUserSearch: Keycloak finds a client's service
// account user by its username, but leaves service accounts out of a
// listing and of search=, and does not count them.
func TestServiceAccountUsersInUserSearch(t *testing.T) {
	forEachTarget(t, testServiceAccountUsersInUserSearch)
}

func testServiceAccountUsersInUserSearch(t *testing.T, tg *target) {
	tok := tg.workerToken(t)
	c := ctx(t)
	const sa = "service-account-" + kcemu.DevWorkerClientID
	names := func(p gocloak.GetUsersParams) []string {
		t.Helper()
		var out []string
		for _, u := range must(tg.GC.GetUsers(c, tok, tg.Realm, p))(t) {
			out = append(out, *u.Username)
		}
		slices.Sort(out)
		return out
	}
	eq(t, "exact username", strings.Join(names(gocloak.GetUsersParams{Username: gocloak.StringP(sa), Exact: gocloak.BoolP(true)}), ","), sa)
	eq(t, "username", strings.Join(names(gocloak.GetUsersParams{Username: gocloak.StringP(sa)}), ","), sa)
	eq(t, "search", len(names(gocloak.GetUsersParams{Search: gocloak.StringP("service-account")})), 0)
	eq(t, "listing", strings.Join(names(gocloak.GetUsersParams{}), ","), kcemu.DevAdminUser+","+kcemu.DevUser1+","+kcemu.DevUser2)
	count := must(tg.GC.GetUserCount(c, tok, tg.Realm, gocloak.GetUsersParams{}))(t)
	eq(t, "count", count, 3)

	worker := must(tg.GC.GetClients(c, tok, tg.Realm, gocloak.GetClientsParams{ClientID: gocloak.StringP(kcemu.DevWorkerClientID)}))(t)
	user := must(tg.GC.GetClientServiceAccount(c, tok, tg.Realm, *worker[0].ID))(t)
	found := must(tg.GC.GetUsers(c, tok, tg.Realm, gocloak.GetUsersParams{Username: gocloak.StringP(sa), Exact: gocloak.BoolP(true)}))(t)
	eq(t, "the service-account-user endpoint and the search name one user", *user.ID, *found[0].ID)
	byID := must(tg.GC.GetUserByID(c, tok, tg.Realm, *user.ID))(t)
	eq(t, "by id", *byID.Username, sa)
}
