package sagas_test

import (
	"context"
	"slices"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas/sagatest"
)

var createSteps = []string{"keycloak_client", "keycloak_roles", "owner_role", "bucket", "quota", "policy", "policy_readonly", "credentials"}

// The create saga's two lanes run side by side, each in its own order.
var (
	keycloakLane = createSteps[:3]
	minioLane    = createSteps[3:]
)

// allCreateSteps reports whether done holds every create step once, in
// lane order (the lanes themselves interleave).
func allCreateSteps(done []string) bool {
	return len(done) == len(createSteps) && inLaneOrder(done, keycloakLane) && inLaneOrder(done, minioLane)
}

// inLaneOrder reports whether the members of lane appear in got in the
// lane's order (others in between do not matter).
func inLaneOrder(got, lane []string) bool {
	var sub []string
	for _, g := range got {
		if slices.Contains(lane, g) {
			sub = append(sub, g)
		}
	}
	return slices.Equal(sub, lane)
}

// assertProvisioned checks the contract's "what a workspace is made of",
// exactly one of each.
func (h *harness) assertProvisioned(ws string) {
	h.t.Helper()
	s := h.prov.Workspace(ws)
	cred, ok, err := h.vault.GetMember(context.Background(), ws, owner)
	switch {
	case err != nil || !ok:
		h.t.Fatalf("no stored credential of the owner: %v", err)
	case !s.Client || !slices.Equal(s.Roles, events.Roles):
		h.t.Fatalf("client %v roles %v", s.Client, s.Roles)
	case !slices.Equal(s.Mappings[owner], []string{events.RoleAdmin}):
		h.t.Fatalf("owner mappings %v", s.Mappings)
	case !s.Bucket || s.Policy != ws || s.ReadOnlyPolicy != ws:
		h.t.Fatalf("bucket %v policy %q read-only policy %q", s.Bucket, s.Policy, s.ReadOnlyPolicy)
	case len(s.Users) != 1 || s.Users[cred.AccessKey] != (sagatest.MinioUser{Secret: cred.SecretKey, Policy: ws}) || s.User != nil:
		h.t.Fatalf("minio users %+v, stored access key %s", s.Users, cred.AccessKey)
	}
	for kind, want := range map[string]int{"client": 1, "role": 3, "mapping": 1, "bucket": 1, "policy": 2, "user": 1} {
		if got := h.prov.Creates(kind); got != want {
			h.t.Errorf("%s created %d times, want %d", kind, got, want)
		}
	}
}

func TestCreateProvisionsTheWorkspaceAndPublishesEachStep(t *testing.T) {
	h := newHarness(t)
	cmd := create(t, "ws-alpha")
	if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	h.assertProvisioned("ws-alpha")
	rec := h.record("ws-alpha")
	if rec.Status != events.StatusReady || !allCreateSteps(rec.StepsDone) || rec.Lease != nil {
		t.Fatalf("record %+v", rec)
	}
	envs := h.eventsOf("ws-alpha")
	got := summary(t, envs)
	lanes := [][]string{
		{"create:keycloak_client", "create:keycloak_roles", "create:owner_role", "member:" + owner + "=ws_admin"},
		{"create:bucket", "create:quota", "create:policy", "create:credentials"},
	}
	if len(got) != 11 || got[0] != "status:provisioning" || got[10] != "status:ready" ||
		!inLaneOrder(got, lanes[0]) || !inLaneOrder(got, lanes[1]) {
		t.Fatalf("events %v: want provisioning, each lane's events in its order, then ready", got)
	}
	for _, e := range envs {
		if e.CorrelationID != cmd.CorrelationID || e.CausationID != cmd.ID || e.Actor != "admin" {
			t.Fatalf("event %s: correlation %s causation %s actor %s", e.Type, e.CorrelationID, e.CausationID, e.Actor)
		}
	}
	last, _ := envs[len(envs)-1].DecodeData()
	ready := last.(*events.StatusChanged)
	if ready.Owner != owner || ready.Storage == nil || *ready.Storage != (events.Storage{Bucket: "ws-alpha", Endpoint: endpoint, Region: region}) {
		t.Fatalf("ready event %+v storage %+v", ready, ready.Storage)
	}
}

// createOps are the provider calls of the create steps, in order, and
// opSteps the step of each (the quota step calls nothing without a quota).
var (
	createOps = []string{"EnsureClient", "EnsureClientRoles", "GrantClientRole", "EnsureBucket", "EnsureBucketPolicy", "EnsureReadOnlyPolicy", "EnsureUser"}
	opSteps   = []string{"keycloak_client", "keycloak_roles", "owner_role", "bucket", "policy", "policy_readonly", "credentials"}
)

func TestCrashBetweenSideEffectAndProgressAtEveryCreateStep(t *testing.T) {
	for i, op := range createOps {
		t.Run(op, func(t *testing.T) {
			h := newHarness(t)
			cmd := create(t, "ws-crash")
			crashAfter(h.prov, op)
			crashed, err := handleCrashing(t, h.coordinator(fastRetries("w1")), cmd)
			if !crashed {
				t.Fatalf("no crash (err %v)", err)
			}
			if got := h.record("ws-crash").StepsDone; slices.Contains(got, opSteps[i]) {
				t.Fatalf("the crashed step %s is recorded as done: %v", opSteps[i], got)
			}
			// The restarted worker (same id: its own lease) gets the command again.
			if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), cmd); err != nil {
				t.Fatal(err)
			}
			h.assertProvisioned("ws-crash")
			for j, o := range createOps {
				want := 1
				if j == i {
					want = 2 // the crashed step repeats, as a no-op
				}
				if got := h.prov.Calls(o); got != want {
					t.Errorf("%s called %d times, want %d", o, got, want)
				}
			}
			if rec := h.record("ws-crash"); rec.Status != events.StatusReady || !allCreateSteps(rec.StepsDone) {
				t.Fatalf("record %+v", rec)
			}
			// The repeated step published nothing new: its event ids are the same.
			if got := summary(t, h.eventsOf("ws-crash")); len(got) != 11 {
				t.Fatalf("events after resume: %v", got)
			}
		})
	}
}

func TestCreateIsIdempotentAcrossCommandsAndDeliveries(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	first := create(t, "ws-twice")
	for _, cmd := range []events.Envelope{first, first, first, create(t, "ws-twice")} {
		if err := c.Handle(context.Background(), cmd); err != nil {
			t.Fatal(err)
		}
	}
	h.assertProvisioned("ws-twice")
	if n := h.prov.Calls("EnsureClient"); n != 1 {
		t.Fatalf("EnsureClient called %d times", n)
	}
}
