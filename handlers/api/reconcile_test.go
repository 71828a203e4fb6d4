package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

func TestReconcileIsQueuedForReadyOrDegradedOnly(t *testing.T) {
	s := newStack(t)
	s.put(readmodel.Workspace{Name: "ws-r", Status: events.StatusReady})
	s.put(readmodel.Workspace{Name: "ws-d", Status: events.StatusDegraded, LastError: "the bucket ws-d was re-created by someone else"})
	s.put(readmodel.Workspace{Name: "ws-f", Status: events.StatusFailed, LastError: "minio down", FailedStep: "bucket"})
	s.waitFor("ws-f", func(_ readmodel.Workspace, ok bool) bool { return ok })

	for _, ws := range []string{"ws-r", "ws-d"} {
		if r := s.call(req{method: "POST", path: "/workspaces/" + ws + "/reconcile", user: "admin"}); r.status != http.StatusAccepted {
			t.Fatalf("reconcile %s: %d %s", ws, r.status, r.body)
		}
		if env := s.lastCommand("workspace.cmd." + ws + ".reconcile"); env.Type != events.TypeReconcile || env.Actor != "admin" {
			t.Fatalf("reconcile envelope %+v", env)
		}
	}
	var got map[string]any
	if s.call(req{method: "GET", path: "/workspaces/ws-d", user: "admin"}).json(t, &got); got["status"] != "degraded" ||
		got["last_error"] != "the bucket ws-d was re-created by someone else" {
		t.Fatalf("a degraded workspace reads %v", got)
	}
	r := s.call(req{method: "POST", path: "/workspaces/ws-f/reconcile", user: "admin"})
	if r.status != http.StatusConflict {
		t.Fatalf("reconcile of a failed workspace: %d %s", r.status, r.body)
	}
	if r := s.call(req{method: "POST", path: "/workspaces/ws-nope/reconcile", user: "admin"}); r.status != http.StatusNotFound {
		t.Fatalf("reconcile of an unknown workspace: %d %s", r.status, r.body)
	}
	if r := s.call(req{method: "POST", path: "/workspaces/ws-r/reconcile", user: "example-user-1"}); r.status != http.StatusForbidden {
		t.Fatalf("reconcile by a non-admin: %d %s", r.status, r.body)
	}
	if r := s.call(req{method: "POST", path: "/workspaces/ws-r/reconcile", user: "admin", body: `{"x":1}`}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("reconcile with a stray field: %d %s", r.status, r.body)
	}
	if r := s.call(req{method: "POST", path: "/workspaces/ws-d/members", user: "admin", body: `{"username":"bob"}`}); r.status != http.StatusConflict || !strings.Contains(string(r.body), "degraded") {
		t.Fatalf("member add on a degraded workspace: %d %s", r.status, r.body)
	}
	if r := s.call(req{method: "GET", path: "/workspaces?status=degraded", user: "admin"}); r.status != http.StatusOK {
		t.Fatalf("list degraded: %d %s", r.status, r.body)
	}
}
