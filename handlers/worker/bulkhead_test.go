package worker_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
)

// keycloakOps are the fake providers' calls that reach Keycloak; every
// other one reaches MinIO.
var keycloakOps = []string{"EnsureClient", "EnsureClientRoles", "GrantClientRole", "RevokeClientRole",
	"DeleteClient", "RoleHolders", "ServiceAccountUser"}

// Bulkheads: with MinIO hung and every lifecycle slot taken by creates
// waiting on it, a member added to a ready workspace still gets its
// Keycloak role at once, in a side slot of its own.
func TestMinIOOutageDoesNotStallMemberRoles(t *testing.T) {
	h := newHarness(t)
	h.prov.AddUser("bob")
	cfg := testConfig("w1")
	cfg.Concurrency, cfg.SideConcurrency = 2, 2
	cfg.StepTimeout = time.Minute // the hung calls outlast the test, not the step
	h.start(cfg)
	h.send(create(t, "ws-bulk"))
	h.waitFor("ws-bulk ready", func() bool { return h.status("ws-bulk") == events.StatusReady })

	hang := make(chan struct{})
	t.Cleanup(func() { close(hang) })
	h.prov.SetBefore(func(op, _ string) error {
		if !slices.Contains(keycloakOps, op) {
			<-hang // MinIO answers nothing
		}
		return nil
	})
	for _, ws := range []string{"ws-hung-a", "ws-hung-b", "ws-hung-c", "ws-hung-d"} {
		h.send(create(t, ws))
	}
	h.waitFor("both lifecycle slots held by creates on MinIO", func() bool {
		return h.prov.Calls("EnsureBucket") >= 2
	})
	sent := time.Now()
	h.send(command(t, "ws-bulk", &events.MemberAdd{Username: "bob", Role: events.RoleViewer}))
	h.waitFor("bob's role in Keycloak", func() bool {
		return slices.ContainsFunc(h.prov.Workspace("ws-bulk").Mappings["bob"], func(r string) bool { return strings.EqualFold(r, events.RoleViewer) })
	})
	took := time.Since(sent)
	t.Logf("member role mapped %s after the command, with MinIO hung and both lifecycle slots held", took)
	if took > 2*time.Second {
		t.Fatalf("the member's role took %s behind hung creates", took)
	}
}
