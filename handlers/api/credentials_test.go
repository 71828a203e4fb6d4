package api

import (
	"context"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// fakeSessions records what the API asked of the object store's STS.
type fakeSessions struct {
	mu   sync.Mutex
	asks []SessionRequest
	who  []string
}

func (f *fakeSessions) Issue(_ context.Context, ws, username string, req SessionRequest) (Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if username == "keyless" {
		return Session{}, ErrNoKeys
	}
	f.asks, f.who = append(f.asks, req), append(f.who, ws+"/"+username)
	return Session{AccessKey: "STSAK", SecretKey: "stssecret", SessionToken: "token", Endpoint: "http://s3", Region: "eu-1",
		Expiration: time.Now().Add(req.Duration)}, nil
}

func (f *fakeSessions) last() SessionRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.asks[len(f.asks)-1]
}

// storageStack has ws-s ready with an admin, a member, a viewer and a
// member whose keys are not made yet.
func storageStack(t *testing.T) (*stack, *fakeSessions) {
	s := newStack(t)
	f := &fakeSessions{}
	s.deps.Sessions = f
	s.h = s.handler(Config{}, s.deps)
	s.put(readmodel.Workspace{Name: "ws-s", Status: events.StatusReady, Owner: "alice", Members: []readmodel.Member{
		member("alice", events.RoleAdmin), member("bob", events.RoleAccess), member("vera", events.RoleViewer),
		member("keyless", events.RoleAccess)}})
	s.put(readmodel.Workspace{Name: "ws-gone", Status: events.StatusDeleted, Owner: "alice"})
	s.put(readmodel.Workspace{Name: "ws-busy", Status: events.StatusProvisioning, Owner: "alice",
		Members: []readmodel.Member{member("alice", events.RoleAdmin)}})
	s.waitFor("ws-busy", func(_ readmodel.Workspace, ok bool) bool { return ok })
	s.waitFor("ws-s", func(_ readmodel.Workspace, ok bool) bool { return ok })
	return s, f
}

func TestSessionsAreLimitedAndValidated(t *testing.T) {
	s, f := storageStack(t)
	r := s.call(req{method: "POST", path: "/workspaces/ws-s/credentials/sts", user: "bob", body: `{"prefix":"data/","duration_seconds":900}`})
	if r.status != http.StatusCreated {
		t.Fatalf("sts: %d %s", r.status, r.body)
	}
	var got stsBody
	r.json(t, &got)
	c := got.Credentials
	if c["AWS_SESSION_TOKEN"] != "token" || c["bucketname"] != "ws-s" || c["prefix"] != "data/" || c["expiration"] == "" ||
		c["AWS_ENDPOINT_URL"] != "http://s3" || c["AWS_REGION"] != "eu-1" {
		t.Fatalf("credentials %v", c)
	}
	if ask := f.last(); ask.Prefix != "data/" || ask.ReadOnly || ask.Duration != 15*time.Minute {
		t.Fatalf("asked %+v", ask)
	}
	// no body: the defaults; a viewer's session is read-only whatever is asked
	if r := s.call(req{method: "POST", path: "/workspaces/ws-s/credentials/sts", user: "vera"}); r.status != http.StatusCreated {
		t.Fatalf("viewer sts: %d %s", r.status, r.body)
	}
	if ask := f.last(); !ask.ReadOnly || ask.Duration != time.Hour || ask.Prefix != "" {
		t.Fatalf("viewer asked %+v", ask)
	}
	for _, tc := range []struct {
		user, path, body string
		status           int
		field            string
	}{
		{"bob", "ws-s", `{"duration_seconds":60}`, 422, "duration_seconds"},
		{"bob", "ws-s", `{"duration_seconds":31536001}`, 422, "duration_seconds"},
		{"bob", "ws-s", `{"duration_seconds":"an hour"}`, 422, "duration_seconds"},
		{"bob", "ws-s", `{"duration_seconds":1.5}`, 422, "duration_seconds"},
		{"bob", "ws-s", `{"prefix":"../other"}`, 422, "prefix"},
		{"bob", "ws-s", `{"prefix":"a/../../b"}`, 422, "prefix"},
		{"bob", "ws-s", `{"prefix":"/abs"}`, 422, "prefix"},
		{"bob", "ws-s", `{"prefix":"data/*"}`, 422, "prefix"},
		{"bob", "ws-s", `{"read_only":"yes"}`, 422, "read_only"},
		{"bob", "ws-s", `{"colour":"red"}`, 422, "colour"},
		{"mallory", "ws-s", `{}`, 403, ""},
		{"admin", "ws-s", `{}`, 403, ""}, // a platform admin who is no member holds no keys
		{"bob", "ws-none", `{}`, 404, "name"},
		{"bob", "ws-gone", `{}`, 404, "name"},
		{"admin", "ws-gone", `{}`, 404, "name"},
		{"alice", "ws-busy", `{}`, 409, ""},
		{"keyless", "ws-s", `{}`, 409, ""},
	} {
		r := s.call(req{method: "POST", path: "/workspaces/" + tc.path + "/credentials/sts", user: tc.user, body: tc.body})
		if r.status != tc.status {
			t.Errorf("%s %s %s: %d %s, want %d", tc.user, tc.path, tc.body, r.status, r.body, tc.status)
			continue
		}
		if e := r.errBody(t); e.Field != tc.field {
			t.Errorf("%s %s: field %q, want %q", tc.user, tc.body, e.Field, tc.field)
		}
	}
}

func TestRotationIsACommandForTheCallerOrEveryone(t *testing.T) {
	s, _ := storageStack(t)
	r := s.call(req{method: "POST", path: "/workspaces/ws-s/credentials/rotate", user: "bob", body: `{"grace_seconds":30}`})
	if r.status != http.StatusAccepted {
		t.Fatalf("rotate: %d %s", r.status, r.body)
	}
	env := s.lastCommand("workspace.cmd.ws-s.credentials.rotate")
	if string(env.Data) != `{"username":"bob","grace_seconds":30}` || env.Actor != "bob" {
		t.Fatalf("command %s by %s", env.Data, env.Actor)
	}
	if r := s.call(req{method: "POST", path: "/workspaces/ws-s/credentials/rotate", user: "alice", body: `{"all":true}`}); r.status != http.StatusAccepted {
		t.Fatalf("rotate all: %d %s", r.status, r.body)
	}
	if env := s.lastCommand("workspace.cmd.ws-s.credentials.rotate"); string(env.Data) != `{"all":true}` {
		t.Fatalf("command %s", env.Data)
	}
	for _, tc := range []struct {
		user, path, body string
		status           int
	}{
		{"bob", "ws-s", `{"all":true}`, 403},
		{"mallory", "ws-s", `{}`, 403},
		{"bob", "ws-s", `{"grace_seconds":-1}`, 422},
		{"bob", "ws-s", `{"grace_seconds":604801}`, 422},
		{"bob", "ws-s", `{"grace_seconds":"soon"}`, 422},
		{"alice", "ws-busy", `{}`, 409},
		{"alice", "ws-gone", `{}`, 404},
	} {
		if r := s.call(req{method: "POST", path: "/workspaces/" + tc.path + "/credentials/rotate", user: tc.user, body: tc.body}); r.status != tc.status {
			t.Errorf("%s %s: %d %s, want %d", tc.user, tc.body, r.status, r.body, tc.status)
		}
	}
}

func TestMembersRolesClientsAndTheLastAdmin(t *testing.T) {
	s, _ := storageStack(t)
	for _, tc := range []struct {
		method, path, body string
		status             int
		field              string
	}{
		{"POST", "/workspaces/ws-s/members", `{"username":"carol","role":"ws_viewer"}`, 202, ""},
		{"POST", "/workspaces/ws-s/members", `{"client_id":"notebook"}`, 202, ""},
		{"POST", "/workspaces/ws-s/members", `{"username":"carol","client_id":"notebook"}`, 422, "client_id"},
		{"POST", "/workspaces/ws-s/members", `{"role":"ws_access"}`, 422, "username"},
		{"POST", "/workspaces/ws-s/members", `{"username":"carol","role":"ws_owner"}`, 422, "role"},
		{"POST", "/workspaces/ws-s/members", `{"username":"alice","role":"ws_viewer"}`, 409, "username"},
		{"DELETE", "/workspaces/ws-s/members/alice", ``, 409, "username"},
		{"POST", "/workspaces/ws-s/members", `{"username":"alice","role":"ws_admin"}`, 202, ""},
		{"DELETE", "/workspaces/ws-s/members/bob", ``, 202, ""},
	} {
		r := s.call(req{method: tc.method, path: tc.path, user: "alice", body: tc.body})
		if r.status != tc.status {
			t.Errorf("%s %s %s: %d %s, want %d", tc.method, tc.path, tc.body, r.status, r.body, tc.status)
			continue
		}
		if tc.status >= 400 {
			if e := r.errBody(t); e.Field != tc.field {
				t.Errorf("%s: field %q, want %q", tc.body, e.Field, tc.field)
			}
		}
	}
	env := s.lastCommand("workspace.cmd.ws-s.member.add")
	if string(env.Data) != `{"username":"alice","role":"ws_admin"}` {
		t.Fatalf("last add %s", env.Data)
	}
}

func TestEveryMemberSeesTheirOwnKeys(t *testing.T) {
	s, _ := storageStack(t)
	s.deps.Credentials = testCredentials{
		"ws-s/alice": {"AWS_ACCESS_KEY_ID": "ALICEKEY"},
		"ws-s/bob":   {"AWS_ACCESS_KEY_ID": "BOBKEY"},
	}
	s.h = s.handler(Config{}, s.deps)
	for user, want := range map[string]string{"alice": "ALICEKEY", "bob": "BOBKEY", "admin": ""} {
		var got workspaceBody
		s.call(req{method: "GET", path: "/workspaces/ws-s", user: user}).json(t, &got)
		switch {
		case want == "" && got.Storage != nil:
			t.Errorf("%s (not a member) sees storage %v", user, got.Storage)
		case want != "" && (got.Storage == nil || got.Storage.Credentials["AWS_ACCESS_KEY_ID"] != want):
			t.Errorf("%s sees %+v, want their key %s", user, got.Storage, want)
		}
	}
}
