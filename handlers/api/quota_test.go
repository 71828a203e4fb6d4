package api

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

type fakeUsage struct{}

func (fakeUsage) Usage(context.Context, string) (StorageUsage, error) {
	return StorageUsage{Bytes: 42, Objects: 2, MeasuredAt: time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)}, nil
}

func TestQuotaIsACommandAndValidated(t *testing.T) {
	s, _ := storageStack(t)
	if r := s.call(req{method: "PATCH", path: "/workspaces/ws-s", user: "admin", body: `{"quota_mb":10}`}); r.status != http.StatusAccepted {
		t.Fatalf("patch: %d %s", r.status, r.body)
	}
	if env := s.lastCommand("workspace.cmd.ws-s.quota.set"); string(env.Data) != `{"quota_mb":10}` || env.Actor != "admin" {
		t.Fatalf("command %s by %s", env.Data, env.Actor)
	}
	if r := s.call(req{method: "PATCH", path: "/workspaces/ws-s", user: "admin", body: `{"quota_mb":null}`}); r.status != http.StatusAccepted {
		t.Fatalf("patch null: %d %s", r.status, r.body)
	}
	if env := s.lastCommand("workspace.cmd.ws-s.quota.set"); string(env.Data) != `{"quota_mb":null}` {
		t.Fatalf("removal %s", env.Data)
	}
	if r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"q","default_owner":"u","quota_mb":5}`}); r.status != http.StatusAccepted {
		t.Fatalf("create with quota: %d %s", r.status, r.body)
	}
	if env := s.lastCommand("workspace.cmd.ws-q.create"); string(env.Data) != `{"preferred_name":"q","default_owner":"u","quota_mb":5}` {
		t.Fatalf("create %s", env.Data)
	}
	patch := func(user, path, body string) req { return req{method: "PATCH", path: path, user: user, body: body} }
	for _, tc := range []struct {
		rq     req
		status int
		field  string
	}{
		{patch("admin", "/workspaces/ws-s", `{"quota_mb":0}`), 422, "quota_mb"},
		{patch("admin", "/workspaces/ws-s", `{"quota_mb":-5}`), 422, "quota_mb"},
		{patch("admin", "/workspaces/ws-s", `{"quota_mb":1.5}`), 422, "quota_mb"},
		{patch("admin", "/workspaces/ws-s", `{"quota_mb":"10"}`), 422, "quota_mb"},
		{patch("admin", "/workspaces/ws-s", `{"quota_mb":1073741825}`), 422, "quota_mb"},
		{patch("admin", "/workspaces/ws-s", `{}`), 422, "quota_mb"},
		{patch("admin", "/workspaces/ws-s", `{"quota":1}`), 422, "quota"},
		{patch("alice", "/workspaces/ws-s", `{"quota_mb":10}`), 403, ""}, // a ws_admin is not a platform admin
		{patch("admin", "/workspaces/ws-busy", `{"quota_mb":10}`), 409, ""},
		{patch("admin", "/workspaces/ws-nope", `{"quota_mb":10}`), 404, "name"},
		{req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"q2","default_owner":"u","quota_mb":0}`}, 422, "quota_mb"},
		{req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"q2","default_owner":"u","quota_mb":2.5}`}, 422, "quota_mb"},
	} {
		r := s.call(tc.rq)
		if r.status != tc.status {
			t.Errorf("%s %s %s: %d %s, want %d", tc.rq.method, tc.rq.path, tc.rq.body, r.status, r.body, tc.status)
			continue
		}
		if e := r.errBody(t); e.Field != tc.field {
			t.Errorf("%s %s: field %q, want %q", tc.rq.path, tc.rq.body, e.Field, tc.field)
		}
	}
}

func TestGetShowsQuotaAndUsage(t *testing.T) {
	s, _ := storageStack(t)
	s.deps.Usage = fakeUsage{}
	s.h = s.handler(Config{}, s.deps)
	s.emit("ws-s", &events.QuotaChanged{QuotaMB: ptr(int64(7))})
	s.waitFor("ws-s", func(ws readmodel.Workspace, _ bool) bool { return ws.QuotaMB != nil })
	var got workspaceBody
	r := s.call(req{method: "GET", path: "/workspaces/ws-s", user: "bob"})
	r.json(t, &got)
	if got.QuotaMB == nil || *got.QuotaMB != 7 || got.Usage == nil || got.Usage.Bytes != 42 || got.Usage.Objects != 2 {
		t.Fatalf("GET: %s", r.body)
	}
	r = s.call(req{method: "GET", path: "/workspaces/ws-busy", user: "alice"})
	if got = (workspaceBody{}); r.status != http.StatusOK {
		t.Fatalf("GET busy: %d", r.status)
	}
	r.json(t, &got)
	if got.Usage != nil || got.QuotaMB != nil {
		t.Fatalf("a workspace not ready shows usage or quota: %s", r.body)
	}
}

func ptr[T any](v T) *T { return &v }
