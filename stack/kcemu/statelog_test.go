package kcemu

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path"
	"strings"
	"testing"
)

// writeEverything drives every kind of Admin API and session write the
// log must carry, in the dev realm and in realms of their own, calling
// check (if not nil) after each: a later write touching the same object
// would hide one that was not logged.
func writeEverything(t *testing.T, s *Server, check func()) {
	t.Helper()
	if check == nil {
		check = func() {}
	}
	tok := adminToken(t, s)
	base := s.URL() + "/admin/realms/eoepca"
	mustStatus := func(want int, method, u, body string) string {
		t.Helper()
		status, h := doJSON(t, method, u, tok, body)
		if status != want {
			t.Fatalf("%s %s: %d, want %d", method, u, status, want)
		}
		check()
		return path.Base(h.Get("Location"))
	}
	c := mustStatus(201, "POST", base+"/clients", `{"clientId":"ws-a","serviceAccountsEnabled":true,"attributes":{"k":"v"}}`)
	gone := mustStatus(201, "POST", base+"/clients", `{"clientId":"ws-gone"}`)
	mustStatus(204, "PUT", base+"/clients/"+c, `{"clientId":"ws-renamed","description":"d"}`)
	mustStatus(200, "POST", base+"/clients/"+c+"/client-secret", ``)
	m := mustStatus(201, "POST", base+"/clients/"+c+"/protocol-mappers/models", `{"name":"aud","protocolMapper":"oidc-audience-mapper","config":{"included.client.audience":"x"}}`)
	mustStatus(204, "PUT", base+"/clients/"+c+"/protocol-mappers/models/"+m, `{"name":"aud2"}`)
	for _, r := range []string{"ws_admin", "ws_viewer", "ws_extra"} {
		mustStatus(201, "POST", base+"/clients/"+c+"/roles", `{"name":"`+r+`"}`)
		mustStatus(201, "POST", base+"/clients/"+gone+"/roles", `{"name":"`+r+`"}`)
	}
	mustStatus(201, "POST", base+"/roles", `{"name":"lead","composite":true,"composites":{"client":{"ws-renamed":["ws_admin","ws_extra"]}}}`)
	u := mustStatus(201, "POST", base+"/users", `{"username":"Someone","email":"a@x.org","enabled":true}`)
	mustStatus(201, "POST", base+"/users", `{"username":"leaving"}`)
	mustStatus(204, "PUT", base+"/users/"+u, `{"email":"b@x.org","firstName":"S"}`)
	mustStatus(204, "PUT", base+"/users/"+u+"/reset-password", `{"type":"password","value":"pw","temporary":false}`)
	grant := func(client, role string) {
		_, body := get(t, base+"/clients/"+client+"/roles/"+role, tok)
		mustStatus(204, "POST", base+"/users/"+u+"/role-mappings/clients/"+client, "["+body+"]")
	}
	grant(c, "ws_admin")
	grant(gone, "ws_viewer")
	mustStatus(204, "POST", base+"/clients/"+c+"/scope-mappings/clients/"+gone, `[{"name":"ws_viewer"}]`)
	mustStatus(204, "PUT", base+"/clients/"+c, `{"fullScopeAllowed":false}`)
	sc := mustStatus(201, "POST", base+"/client-scopes", `{"name":"workspace:ws-renamed"}`)
	goneScope := mustStatus(201, "POST", base+"/client-scopes", `{"id":"11111111-2222-3333-4444-555555555555","name":"workspace:gone"}`)
	mustStatus(204, "POST", base+"/client-scopes/"+sc+"/scope-mappings/clients/"+c, `[{"name":"ws_admin"}]`)
	mustStatus(204, "PUT", base+"/clients/"+c+"/optional-client-scopes/"+sc, ``)
	mustStatus(204, "DELETE", base+"/client-scopes/"+goneScope, ``)
	mustStatus(204, "DELETE", base+"/clients/"+c+"/roles/ws_viewer", ``)
	mustStatus(204, "DELETE", base+"/clients/"+c+"/roles/ws_extra", ``)
	mustStatus(204, "DELETE", base+"/clients/"+gone, ``)
	_, body := get(t, base+"/users?username=leaving&exact=true", tok)
	var found []struct{ ID string }
	_ = json.Unmarshal([]byte(body), &found)
	if len(found) != 1 {
		t.Fatalf("user leaving not found: %s", body)
	}
	mustStatus(204, "DELETE", base+"/users/"+found[0].ID, ``)
	mustStatus(204, "PUT", base, `{"accessTokenLifespan":123}`)
	mustStatus(201, "POST", s.URL()+"/admin/realms", `{"realm":"second","enabled":true}`)
	mustStatus(201, "POST", s.URL()+"/admin/realms", `{"realm":"third","enabled":true}`)
	mustStatus(204, "DELETE", s.URL()+"/admin/realms/third", ``)
	_, tokens := postForm(t, s.URL()+"/realms/eoepca/protocol/openid-connect/token", url.Values{
		"grant_type": {"password"}, "client_id": {DevPublicClientID}, "username": {DevUser1}, "password": {DevPassword}})
	if st, _ := postForm(t, s.URL()+"/realms/eoepca/protocol/openid-connect/logout", url.Values{
		"client_id": {DevPublicClientID}, "refresh_token": {tokens["refresh_token"].(string)}}); st != http.StatusNoContent {
		t.Fatalf("logout: %d", st)
	}
	check()
}

// snapshotOf is the state as a snapshot would store it.
func snapshotOf(t *testing.T, st *state) []byte {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (s *Server) snapshot(t *testing.T) []byte {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return snapshotOf(t, s.st)
}

// sameAsOnDisk checks the state read back from dir is the one served,
// indexes included.
func sameAsOnDisk(t *testing.T, s *Server, dir string) {
	t.Helper()
	st, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := snapshotOf(t, st), s.snapshot(t); !bytes.Equal(got, want) {
		t.Fatalf("state read back differs from the state served:\n got %s\nwant %s", got, want)
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	for name, rl := range s.st.Realms {
		fresh := *rl
		fresh.reindex()
		if !sameIndex(rl.idx, fresh.idx) {
			t.Errorf("realm %s: the kept index differs from one rebuilt", name)
		}
	}
}

func sameIndex(a, b index) bool {
	ja, _ := json.Marshal([]any{keys(a.clients), keys(a.usernames), keys(a.emails), keys(a.accounts), roleKeys(a.roles),
		pairs(a.holders), pairs(a.parents)})
	jb, _ := json.Marshal([]any{keys(b.clients), keys(b.usernames), keys(b.emails), keys(b.accounts), roleKeys(b.roles),
		pairs(b.holders), pairs(b.parents)})
	return bytes.Equal(ja, jb)
}

func keys[T any](m map[string]T) map[string]bool {
	out := map[string]bool{}
	for k := range m {
		out[k] = true
	}
	return out
}

func pairs[T any](m map[string]map[string]T) map[string]bool {
	out := map[string]bool{}
	for o, inner := range m {
		for i := range inner {
			out[o+"/"+i] = true
		}
	}
	return out
}

func roleKeys(m map[string]map[string]*role) map[string]string {
	out := map[string]string{}
	for c, byName := range m {
		for n, ro := range byName {
			out[c+"/"+n] = ro.ID
		}
	}
	return out
}

func TestLogReplaysEveryKindOfWrite(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir, DevRealm: true})
	writeEverything(t, s, func() { sameAsOnDisk(t, s, dir) })
	if fi, err := os.Stat(LogFile(dir)); err != nil || fi.Size() == 0 {
		t.Fatalf("writes should be in the log, not yet compacted: %v", err)
	}
}

func TestCompactionKeepsTheState(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir, DevRealm: true})
	s.mu.Lock()
	s.store.compactAt = 1 // every write compacts
	s.mu.Unlock()
	writeEverything(t, s, func() { sameAsOnDisk(t, s, dir) })
	if fi, err := os.Stat(LogFile(dir)); err != nil || fi.Size() != 0 {
		t.Fatalf("the log should be empty after compacting: %v", err)
	}
	sameAsOnDisk(t, s, dir)
}

// A crash after a compaction's snapshot and before its truncation leaves
// records the snapshot holds; replaying them again must not go back.
func TestRecordsTheSnapshotHoldsAreSkipped(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir, DevRealm: true})
	writeEverything(t, s, nil)
	stale, err := os.ReadFile(LogFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	tok := adminToken(t, s)
	if st, _ := doJSON(t, "PUT", s.URL()+"/admin/realms/eoepca", tok, `{"accessTokenLifespan":456}`); st != 204 {
		t.Fatalf("update realm: %d", st)
	}
	s.mu.Lock()
	err = s.store.compact(s.st)
	s.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(LogFile(dir), stale, 0o600); err != nil {
		t.Fatal(err)
	}
	sameAsOnDisk(t, s, dir)
}

func TestTornLastRecordIsDropped(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir, DevRealm: true})
	writeEverything(t, s, nil)
	want := s.snapshot(t)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(LogFile(dir), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"seq":999,"changes":[{"realm":"eoepca","kind":"client","id":"x","value":{"id":"x","cli`)
	f.Close()

	s2 := start(t, Config{DataDir: dir, DevRealm: true})
	if got := s2.snapshot(t); !bytes.Equal(got, want) {
		t.Fatalf("state after a torn record differs:\n got %s\nwant %s", got, want)
	}
	tok := adminToken(t, s2)
	if st, _ := doJSON(t, "POST", s2.URL()+"/admin/realms/eoepca/clients", tok, `{"clientId":"after-crash"}`); st != 201 {
		t.Fatalf("write after a torn record: %d", st)
	}
	sameAsOnDisk(t, s2, dir)
}

func TestCorruptRecordBeforeTheLastFailsNamingTheLog(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir, DevRealm: true})
	writeEverything(t, s, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(LogFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	data = append([]byte("{not json\n"), data...)
	if err := os.WriteFile(LogFile(dir), data, 0o600); err != nil {
		t.Fatal(err)
	}
	err = CheckState(dir)
	if err == nil || !strings.Contains(err.Error(), LogFile(dir)) || !strings.Contains(err.Error(), "--fresh") {
		t.Fatalf("want an error naming the log and --fresh, got %v", err)
	}
}

func TestRemoveStateStartsFromNothing(t *testing.T) {
	dir := t.TempDir()
	s := start(t, Config{DataDir: dir, DevRealm: true})
	writeEverything(t, s, nil)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := RemoveState(dir); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{StateFile(dir), LogFile(dir)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s still there: %v", p, err)
		}
	}
}
