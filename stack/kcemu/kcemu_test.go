package kcemu

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func postForm(t testing.TB, u string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(u, form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func get(t testing.TB, u, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func adminToken(t testing.TB, s *Server) string {
	t.Helper()
	status, body := postForm(t, s.URL()+"/realms/master/protocol/openid-connect/token",
		url.Values{"grant_type": {"password"}, "client_id": {"admin-cli"}, "username": {"admin"}, "password": {"admin"}})
	if status != http.StatusOK {
		t.Fatalf("admin login: %d %v", status, body)
	}
	return body["access_token"].(string)
}

func TestValidateDefaults(t *testing.T) {
	var c Config
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Addr != "127.0.0.1:0" || c.AdminUser != "admin" || c.AdminPassword != "admin" || c.Logger == nil {
		t.Fatalf("defaults not applied: %+v", c)
	}
	bad := Config{Addr: ":8080"}
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "Addr") {
		t.Fatalf("an Addr without host should fail naming Addr, got %v", err)
	}
}

func TestImportGocloakRealmExport(t *testing.T) {
	s := start(t, Config{Realms: []string{"testdata/gocloak-realm.json"}})
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.st.Realms["gocloak"]
	if r == nil {
		t.Fatal("realm gocloak not imported")
	}
	if r.ID != "gocloak" || r.AccessTokenLifespan != 300 {
		t.Errorf("realm settings: id %q lifespan %d", r.ID, r.AccessTokenLifespan)
	}
	c := r.Clients["60be66a5-e007-464c-9b74-0e3c2e69e478"]
	if c == nil || c.ClientID != "gocloak" || c.Secret != "gocloak-secret" || !c.ServiceAccountsEnabled {
		t.Fatalf("client gocloak not imported with its id, secret and service account: %+v", c)
	}
	sa := r.Users["6ead694f-bf59-495d-a475-a3b0b9be50ed"]
	if sa == nil || sa.ServiceAccountOf != c.ID {
		t.Fatalf("service account user not linked: %+v", sa)
	}
	if !r.hasClientRole(sa, realmManagement, "manage-clients") || !r.hasClientRole(sa, "gocloak", "uma_protection") {
		t.Error("service account lost the client roles the export maps (created on import, as Keycloak does)")
	}
	if !r.hasRealmRole(sa, "offline_access") {
		t.Error("pre-13 defaultRoles did not become default-roles-gocloak's composites")
	}
}

func TestImportRejectsWhatIsNotARealmExport(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"array.json":   `[1,2]`,
		"norealm.json": `{"clients":[]}`,
		"broken.json":  `{"realm":`,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Start(context.Background(), Config{Realms: []string{p}})
		if err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), "not a Keycloak realm export") {
			t.Errorf("%s: want an error naming the file, got %v", name, err)
		}
	}
}

func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir, DevRealm: true})
	tok := adminToken(t, s)
	status, _ := doJSON(t, http.MethodPost, s.URL()+"/admin/realms/eoepca/clients", tok,
		`{"clientId":"ws-keep","attributes":{"owned":"yes"}}`)
	if status != http.StatusCreated {
		t.Fatalf("create client: %d", status)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s2 := start(t, Config{DataDir: dir, DevRealm: true})
	// The old token names the old port in iss; rewriting iss breaks the
	// signature, so it must not verify.
	status, body := get(t, s2.URL()+"/admin/realms/eoepca/clients?clientId=ws-keep", reissuerToken(t, tok, s.URL(), s2.URL()))
	if status != http.StatusUnauthorized {
		t.Fatalf("a token with a forged issuer must not verify: %d %s", status, body)
	}
	tok2 := adminToken(t, s2)
	status, body = get(t, s2.URL()+"/admin/realms/eoepca/clients?clientId=ws-keep", tok2)
	if status != http.StatusOK || !strings.Contains(body, `"owned":"yes"`) {
		t.Fatalf("client lost across restart: %d %s", status, body)
	}
}

// reissuerToken rewrites iss without re-signing: it must never verify.
func reissuerToken(t *testing.T, tok, from, to string) string {
	parts := strings.Split(tok, ".")
	c, err := unverifiedClaims(tok)
	if err != nil {
		t.Fatal(err)
	}
	c["iss"] = strings.Replace(c["iss"].(string), from, to, 1)
	p, _ := json.Marshal(c)
	return parts[0] + "." + b64(p) + "." + parts[2]
}

func doJSON(t testing.TB, method, u, token, body string) (int, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, u, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

func TestUnreadableStateFailsNamingTheFileAndFresh(t *testing.T) {
	for name, content := range map[string]string{
		"corrupt": `{"formatVersion":1,"realms":{"x":`,
		"older":   `{"formatVersion":0,"realms":{}}`,
		"unknown": `{"realms":{}}`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(StateFile(dir), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Start(context.Background(), Config{DataDir: dir})
		if err == nil || !strings.Contains(err.Error(), StateFile(dir)) || !strings.Contains(err.Error(), "--fresh") {
			t.Errorf("%s: want an error naming the file and --fresh, got %v", name, err)
		}
	}
}

func TestTokenIssuedBeforeRestartStillVerifies(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{DataDir: dir, DevRealm: true}
	s := start(t, cfg)
	_, body := postForm(t, s.URL()+"/realms/eoepca/protocol/openid-connect/token", url.Values{
		"grant_type": {"client_credentials"}, "client_id": {DevWorkerClientID}, "client_secret": {DevWorkerClientSecret}})
	tok := body["access_token"].(string)
	addr := strings.TrimPrefix(s.URL(), "http://")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	cfg.Addr = addr // same address, so the token's issuer is still ours
	s2, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("rebind %s after close: %v", addr, err)
	}
	t.Cleanup(func() { _ = s2.Close() })
	status, out := get(t, s2.URL()+"/admin/realms/eoepca/clients?clientId="+DevWorkerClientID, tok)
	if status != http.StatusOK || !strings.Contains(out, DevWorkerClientID) {
		t.Fatalf("pre-restart worker token rejected after restart: %d %s", status, out)
	}
}

func TestConcurrentRequests(t *testing.T) {
	s := start(t, Config{DevRealm: true, DataDir: t.TempDir()})
	tok := adminToken(t, s)
	const workers, each = 16, 12
	var wg sync.WaitGroup
	errs := make(chan string, workers*each*2)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				status, _ := doJSON(t, http.MethodPost, s.URL()+"/admin/realms/eoepca/clients", tok,
					fmt.Sprintf(`{"clientId":"ws-%d-%d"}`, w, i))
				if status != http.StatusCreated {
					errs <- fmt.Sprintf("create: %d", status)
				}
				st, _ := postForm(t, s.URL()+"/realms/eoepca/protocol/openid-connect/token", url.Values{
					"grant_type": {"password"}, "client_id": {DevPublicClientID}, "username": {DevUser1}, "password": {DevPassword}})
				if st != http.StatusOK {
					errs <- fmt.Sprintf("token: %d", st)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	status, body := get(t, s.URL()+"/admin/realms/eoepca/clients?clientId=ws-&search=true", tok)
	var list []map[string]any
	_ = json.Unmarshal([]byte(body), &list)
	if status != http.StatusOK || len(list) != workers*each {
		t.Fatalf("want %d clients, got %d (%d)", workers*each, len(list), status)
	}
}
