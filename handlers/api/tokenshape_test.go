package api

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
)

// manyWorkspaces is how many workspaces the busiest user belongs to; the
// other counts are measured along the way, one user each.
const manyWorkspaces = 10_000

var membershipCounts = []int{0, 10, 100, 1_000, manyWorkspaces}

// eoepcaSignIn is a sign-in client with Keycloak's defaults added to the
// compact dev realm, so both shapes come from one realm.
const eoepcaSignIn = "demo-eoepca"

func manyName(i int) string { return fmt.Sprintf("ws-many-%05d", i) }

func countUser(n int) string { return fmt.Sprintf("member-of-%05d", n) }

// TestAUserInTenThousandWorkspaces: a user who belongs to 10,000
// workspaces, in both token shapes. EOEPCA's (each workspace in aud and
// resource_access) grows with each membership; the compact one (the realm's
// sign-in clients with fullScopeAllowed off) stays the same size. Either
// token gets that user the right answers from the API, over a real HTTP
// server with the provisioner's header limit, since the API decides from
// its read model.
func TestAUserInTenThousandWorkspaces(t *testing.T) {
	s := newStack(t)
	realmFile := filepath.Join(t.TempDir(), "realm.json")
	if err := os.WriteFile(realmFile, manyWorkspacesRealm(t), 0o600); err != nil {
		t.Fatal(err)
	}
	kc, err := kcemu.Start(s.ctx, kcemu.Config{Realms: []string{realmFile}})
	if err != nil {
		t.Fatalf("start emulator: %v", err)
	}
	t.Cleanup(func() { _ = kc.Close() })
	issuer := kc.URL() + "/realms/" + kcemu.DevRealmName
	v, err := auth.NewJWT(s.ctx, auth.JWTConfig{IssuerURL: issuer, Audience: kcemu.DevAPIClientID, AdminRole: kcemu.DevAdminRole})
	if err != nil {
		t.Fatal(err)
	}
	d := s.deps
	d.Auth = v
	// The provisioner's server keeps net/http's default header limit (1 MiB).
	srv := httptest.NewServer(s.handler(Config{AdminRole: kcemu.DevAdminRole}, d))
	t.Cleanup(srv.Close)

	busiest := countUser(manyWorkspaces)
	putManyWorkspaces(t, s, busiest)

	login := func(client, user string) string {
		return emulatorToken(t, kc.URL(), kcemu.DevRealmName, url.Values{"grant_type": {"password"},
			"client_id": {client}, "username": {user}, "password": {kcemu.DevPassword}})
	}
	var eoepca, compact []int
	for _, n := range membershipCounts {
		full, small := login(eoepcaSignIn, countUser(n)), login(kcemu.DevPublicClientID, countUser(n))
		eoepca, compact = append(eoepca, len(full)), append(compact, len(small))
		t.Logf("%6d workspaces: EOEPCA token %7d bytes, compact %4d bytes", n, len(full), len(small))
	}
	for i := 1; i < len(membershipCounts); i++ {
		if eoepca[i] <= eoepca[i-1] {
			t.Errorf("the EOEPCA token did not grow from %d to %d workspaces: %v", membershipCounts[i-1], membershipCounts[i], eoepca)
		}
		if d := compact[i] - compact[0]; d < -8 || d > 8 {
			t.Errorf("the compact token's size depends on the workspaces: %v", compact)
		}
	}
	if last := eoepca[len(eoepca)-1]; last < 50*manyWorkspaces {
		t.Errorf("EOEPCA token at %d workspaces is %d bytes: does it still carry them all?", manyWorkspaces, last)
	}

	// One workspace on demand: its client scope asked for in a compact realm.
	kcAdapter, err := keycloak.New(keycloak.Config{BaseURL: kc.URL(), Realm: kcemu.DevRealmName, ClientID: kcemu.DevWorkerClientID,
		ClientSecret: kcemu.DevWorkerClientSecret, WorkspaceScopeClients: []string{kcemu.DevPublicClientID}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := kcAdapter.EnsureClientRoles(s.ctx, manyName(42), events.Roles...); err != nil {
		t.Fatal(err)
	}
	onDemand := emulatorToken(t, kc.URL(), kcemu.DevRealmName, url.Values{"grant_type": {"password"}, "client_id": {kcemu.DevPublicClientID},
		"username": {busiest}, "password": {kcemu.DevPassword}, "scope": {keycloak.WorkspaceScopePrefix + manyName(42)}})
	t.Logf("%6d workspaces: compact token with %s asked for %d bytes", manyWorkspaces, manyName(42), len(onDemand))
	if len(onDemand) > compact[0]+200 {
		t.Errorf("the token with one workspace asked for is %d bytes, the compact one %d", len(onDemand), compact[0])
	}
	_, payload, _ := split(t, onDemand)
	var claims struct {
		Aud []string `json:"aud"`
	}
	if raw, err := base64.RawURLEncoding.DecodeString(payload); err != nil || json.Unmarshal(raw, &claims) != nil ||
		strings.Join(claims.Aud, ",") != kcemu.DevAPIClientID+","+manyName(42) {
		t.Errorf("the token with %s asked for has aud %v, want the API and that workspace", manyName(42), claims.Aud)
	}

	for shape, tok := range map[string]string{"EOEPCA": login(eoepcaSignIn, busiest), "compact": login(kcemu.DevPublicClientID, busiest), "on demand": onDemand} {
		t.Run(shape, func(t *testing.T) { answersTheBusiestUser(t, srv.URL, tok) })
	}
}

// answersTheBusiestUser: the user reads any of their workspaces, none of
// anyone else's, and lists theirs a page at a time.
func answersTheBusiestUser(t *testing.T, base, token string) {
	get := func(path string) (int, []byte) {
		t.Helper()
		rq, err := http.NewRequest(http.MethodGet, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		rq.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(rq)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer func() { _ = resp.Body.Close() }()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, body
	}
	for _, name := range []string{manyName(0), manyName(manyWorkspaces / 2), manyName(manyWorkspaces - 1)} {
		status, body := get("/workspaces/" + name)
		var ws struct {
			Name    string `json:"name"`
			Members []struct {
				Username string `json:"username"`
			} `json:"members"`
		}
		if status != http.StatusOK || json.Unmarshal(body, &ws) != nil || ws.Name != name {
			t.Fatalf("GET /workspaces/%s: %d %s", name, status, body)
		}
	}
	if status, body := get("/workspaces/ws-not-theirs"); status != http.StatusForbidden {
		t.Fatalf("GET another's workspace: %d %s, want 403", status, body)
	}
	status, body := get("/workspaces?limit=5")
	var page struct {
		Items []struct {
			Name string `json:"name"`
		} `json:"items"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &page) != nil || len(page.Items) != 5 {
		t.Fatalf("GET /workspaces?limit=5: %d %s", status, body)
	}
	for _, it := range page.Items {
		if !strings.HasPrefix(it.Name, "ws-many-") {
			t.Fatalf("the list shows %s, not one of the user's", it.Name)
		}
	}
}

// manyWorkspacesRealm is the compact dev realm plus an EOEPCA-shaped
// sign-in client, manyWorkspaces workspace clients (marked as the
// provisioner's) with their roles, and
// one user per count in membershipCounts holding ws_access in that many.
func manyWorkspacesRealm(t *testing.T) []byte {
	t.Helper()
	raw, err := kcemu.DevRealmShaped(kcemu.DevRealmName, kcemu.TokenShapeCompact)
	if err != nil {
		t.Fatal(err)
	}
	var rep map[string]any
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	clients := append(rep["clients"].([]any), map[string]any{
		"clientId": eoepcaSignIn, "publicClient": true, "directAccessGrantsEnabled": true, "standardFlowEnabled": false,
		"protocolMappers": []any{map[string]any{"name": "workspace-api-audience", "protocol": "openid-connect",
			"protocolMapper": "oidc-audience-mapper",
			"config":         map[string]any{"included.client.audience": kcemu.DevAPIClientID, "access.token.claim": "true"}}},
	})
	roles := map[string]any{}
	for i := range manyWorkspaces {
		clients = append(clients, map[string]any{"clientId": manyName(i), "bearerOnly": true, "publicClient": false,
			"attributes": map[string]any{sagas.ManagedByKey: sagas.ManagedByValue}})
		roles[manyName(i)] = []any{map[string]any{"name": events.RoleAdmin}, map[string]any{"name": events.RoleAccess},
			map[string]any{"name": events.RoleViewer}}
	}
	rep["clients"] = clients
	rep["roles"].(map[string]any)["client"] = roles
	users := rep["users"].([]any)
	for _, n := range membershipCounts {
		held := map[string]any{}
		for i := range n {
			held[manyName(i)] = []any{events.RoleAccess}
		}
		users = append(users, map[string]any{"username": countUser(n), "enabled": true, "email": countUser(n) + "@example.org",
			"credentials": []any{map[string]any{"type": "password", "value": kcemu.DevPassword}},
			"realmRoles":  []any{"default-roles-" + kcemu.DevRealmName}, "clientRoles": held})
	}
	rep["users"] = users
	out, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// putManyWorkspaces fills the read model with the busiest user's
// workspaces and one that is not theirs.
func putManyWorkspaces(t *testing.T, s *stack, user string) {
	t.Helper()
	members := []readmodel.Member{member("owner", events.RoleAdmin), member(user, events.RoleAccess)}
	for i := range manyWorkspaces {
		s.put(readmodel.Workspace{Name: manyName(i), Status: events.StatusReady, Owner: "owner", Members: members})
	}
	s.put(readmodel.Workspace{Name: "ws-not-theirs", Status: events.StatusReady, Owner: "owner",
		Members: []readmodel.Member{member("owner", events.RoleAdmin)}})
	s.waitFor("ws-not-theirs", func(_ readmodel.Workspace, ok bool) bool { return ok })
	s.waitFor(manyName(manyWorkspaces-1), func(ws readmodel.Workspace, ok bool) bool {
		return ok && slices.ContainsFunc(ws.Members, func(m readmodel.Member) bool { return m.Username == user })
	})
}
