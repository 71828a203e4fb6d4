package api

import (
	"net/http"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
)

// DELETE ?force=true, a platform admin's, is taken from any status but
// deleted, and queues a delete that purges; a workspace admin may not.
func TestForceDeleteFromAnyStatus(t *testing.T) {
	s := newStack(t)
	for _, st := range []string{events.StatusProvisioning, events.StatusFailed, events.StatusDeleting, events.StatusReady} {
		name := "ws-force-" + st
		s.put(readmodel.Workspace{Name: name, Status: st, Owner: "alice",
			Members: []readmodel.Member{{Username: "alice", Role: events.RoleAdmin}}})
		s.waitFor(name, func(_ readmodel.Workspace, ok bool) bool { return ok })
		if r := s.call(req{method: "DELETE", path: "/workspaces/" + name + "?force=true", user: "alice"}); r.status != http.StatusForbidden {
			t.Fatalf("%s: force delete by the workspace admin: %d %s", st, r.status, r.body)
		}
		if r := s.call(req{method: "DELETE", path: "/workspaces/" + name + "?force=true", user: "admin"}); r.status != http.StatusAccepted {
			t.Fatalf("%s: force delete: %d %s", st, r.status, r.body)
		}
		if env := s.lastCommand("workspace.cmd." + name + ".delete"); string(env.Data) != `{"purge":true,"force":true}` {
			t.Fatalf("%s: delete data %s", st, env.Data)
		}
	}
}
