package sagas_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
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

var deleteOps = []string{"DeleteUser", "DeleteReadOnlyPolicy", "DeletePolicy", "DeleteBucket", "DeleteClient"}

func TestCrashAtEveryDeleteStepResumes(t *testing.T) {
	for i, op := range deleteOps {
		t.Run(op, func(t *testing.T) {
			h := newHarness(t)
			c := h.coordinator(fastRetries("w1"))
			if err := c.Handle(context.Background(), create(t, "ws-del")); err != nil {
				t.Fatal(err)
			}
			del := command(t, "ws-del", &events.Delete{Purge: true})
			crashAfter(h.prov, op)
			if crashed, err := handleCrashing(t, c, del); !crashed {
				t.Fatalf("no crash (err %v)", err)
			}
			if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), del); err != nil {
				t.Fatal(err)
			}
			if s := h.prov.Workspace("ws-del"); !s.Empty() {
				t.Fatalf("left behind: %+v", s)
			}
			for j, o := range deleteOps {
				want := 1
				if j == i {
					want = 2
				}
				if got := h.prov.Calls(o); got != want {
					t.Errorf("%s called %d times, want %d", o, got, want)
				}
			}
			if rec := h.record("ws-del"); rec.Status != events.StatusDeleted {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}

func TestTransientErrorsAreRetriedInPlace(t *testing.T) {
	h := newHarness(t)
	failures := 0
	h.prov.SetBefore(func(op, _ string) error {
		if op == "EnsureBucket" && failures < 2 {
			failures++
			return errors.New("503 service unavailable")
		}
		return nil
	})
	if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), create(t, "ws-flaky")); err != nil {
		t.Fatal(err)
	}
	h.assertProvisioned("ws-flaky")
	if got := h.prov.Calls("EnsureBucket"); got != 3 {
		t.Fatalf("EnsureBucket called %d times, want 3", got)
	}
	for _, s := range summary(t, h.eventsOf("ws-flaky")) {
		if strings.HasPrefix(s, "failed:") {
			t.Fatalf("a retried transient error published %s", s)
		}
	}
}

func TestRetryBudgetSpentGoesFailedAndRetryResumesAtTheFailedStep(t *testing.T) {
	h := newHarness(t)
	h.prov.SetBefore(func(op, _ string) error {
		if op == "EnsureBucketPolicy" {
			return errors.New("connection refused")
		}
		return nil
	})
	cfg := fastRetries("w1")
	cfg.MaxRetryElapsed = 200 * time.Millisecond
	c := h.coordinator(cfg)
	err := c.Handle(context.Background(), create(t, "ws-down"))
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Step != "policy" || !failed.Retryable {
		t.Fatalf("err = %v, want a retryable failure at policy", err)
	}
	rec := h.record("ws-down")
	if rec.Status != events.StatusFailed || rec.FailedStep != "policy" || !strings.Contains(rec.LastError, "connection refused") {
		t.Fatalf("record %+v", rec)
	}
	got := summary(t, h.eventsOf("ws-down"))
	if !slices.Equal(got[len(got)-2:], []string{"failed:policy", "status:failed"}) {
		t.Fatalf("events %v", got)
	}
	h.prov.SetBefore(nil)
	retry := command(t, "ws-down", &events.Retry{})
	if err := c.Handle(context.Background(), retry); err != nil {
		t.Fatal(err)
	}
	h.assertProvisioned("ws-down")
	if n := h.prov.Calls("EnsureBucket"); n != 1 {
		t.Fatalf("retry repeated the finished bucket step (%d calls)", n)
	}
	envs := h.eventsOf("ws-down")
	if last := envs[len(envs)-1]; last.CausationID != retry.ID || last.CorrelationID != retry.CorrelationID {
		t.Fatalf("events after retry carry causation %s correlation %s", last.CausationID, last.CorrelationID)
	}
	// The same retry delivered again, and a retry of a ready workspace, change nothing.
	for _, cmd := range []events.Envelope{retry, command(t, "ws-down", &events.Retry{})} {
		if err := c.Handle(context.Background(), cmd); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(h.eventsOf("ws-down")); n != len(envs) {
		t.Fatalf("no-op retries published %d events", n-len(envs))
	}
}

func TestUnknownOwnerIsAPermanentFailure(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	cmd := command(t, "ws-orphan", &events.Create{PreferredName: "orphan", DefaultOwner: "nobody"})
	err := c.Handle(context.Background(), cmd)
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Step != "owner_role" || failed.Retryable {
		t.Fatalf("err = %v, want a permanent failure at owner_role", err)
	}
	if n := h.prov.Calls("GrantClientRole"); n != 1 {
		t.Fatalf("a permanent failure was retried: %d calls", n)
	}
	if rec := h.record("ws-orphan"); !strings.Contains(rec.LastError, `"nobody" does not exist`) {
		t.Fatalf("last error %q", rec.LastError)
	}
	h.prov.AddUser("nobody")
	if err := c.Handle(context.Background(), command(t, "ws-orphan", &events.Retry{})); err != nil {
		t.Fatal(err)
	}
	if rec := h.record("ws-orphan"); rec.Status != events.StatusReady || h.prov.Calls("EnsureClient") != 1 {
		t.Fatalf("record %+v, EnsureClient calls %d", rec, h.prov.Calls("EnsureClient"))
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

func TestDeleteWithoutPurgeKeepsANonEmptyWorkspaceIntact(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	ctx := context.Background()
	if _, err := h.namesKV.Create(ctx, "ws-data", []byte("reserved")); err != nil {
		t.Fatal(err)
	}
	if err := c.Handle(ctx, create(t, "ws-data")); err != nil {
		t.Fatal(err)
	}
	if err := h.prov.PutObject("ws-data"); err != nil {
		t.Fatal(err)
	}
	err := c.Handle(ctx, command(t, "ws-data", &events.Delete{}))
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Step != "bucket_empty_check" || failed.Retryable {
		t.Fatalf("err = %v", err)
	}
	rec := h.record("ws-data")
	if rec.Status != events.StatusFailed || !strings.Contains(rec.LastError, "purge=true") {
		t.Fatalf("record %+v", rec)
	}
	h.assertProvisioned("ws-data") // nothing removed, credentials intact
	if h.prov.Workspace("ws-data").Objects != 1 {
		t.Fatal("objects lost")
	}
	if err := c.Handle(ctx, command(t, "ws-data", &events.Delete{Purge: true})); err != nil {
		t.Fatal(err)
	}
	if s := h.prov.Workspace("ws-data"); !s.Empty() {
		t.Fatalf("left behind: %+v", s)
	}
	if m, err := h.vault.Members(ctx, "ws-data"); err != nil || len(m) != 0 {
		t.Fatalf("stored credentials left behind: %d (%v)", len(m), err)
	}
	if _, err := h.namesKV.Get(ctx, "ws-data"); !events.IsNotFound(err) {
		t.Fatalf("name reservation not released: %v", err)
	}
	got := summary(t, h.eventsOf("ws-data"))
	wantTail := []string{"status:deleting", "delete:bucket_empty_check", "delete:credentials", "delete:policy_readonly",
		"delete:policy", "delete:bucket", "delete:keycloak_client", "delete:shares", "delete:release_name", "status:deleted"}
	if !slices.Equal(got[len(got)-len(wantTail):], wantTail) {
		t.Fatalf("events %v", got)
	}
	// The name can be used again.
	if err := c.Handle(ctx, create(t, "ws-data")); err != nil {
		t.Fatal(err)
	}
	if rec := h.record("ws-data"); rec.Status != events.StatusReady {
		t.Fatalf("re-created: %+v", rec)
	}
}

func TestResourcesOfOthersAreNeverAdoptedNorRemoved(t *testing.T) {
	for _, tc := range []struct{ kind, step string }{{"client", "keycloak_client"}, {"bucket", "bucket"}, {"policy", "policy"}} {
		t.Run(tc.kind, func(t *testing.T) {
			h := newHarness(t)
			c := h.coordinator(fastRetries("w1"))
			h.prov.AddForeign(tc.kind, "ws-taken")
			err := c.Handle(context.Background(), create(t, "ws-taken"))
			var failed *sagas.FailedError
			if !errors.As(err, &failed) || failed.Step != tc.step || failed.Retryable || !errors.Is(err, sagas.ErrNotOurs) {
				t.Fatalf("err = %v, want a permanent not-ours failure at %s", err, tc.step)
			}
			if err := c.Handle(context.Background(), command(t, "ws-taken", &events.Delete{})); err != nil {
				t.Fatal(err)
			}
			s := h.prov.Workspace("ws-taken")
			foreignLeft := map[string]bool{"client": s.Client, "bucket": s.Bucket, "policy": s.Policy == "someone-elses-bucket"}
			if !foreignLeft[tc.kind] || !s.ForeignAny && tc.kind != "policy" {
				t.Fatalf("the foreign %s was removed or changed: %+v", tc.kind, s)
			}
			if rec := h.record("ws-taken"); rec.Status != events.StatusDeleted {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}

func TestTheSecretAppearsInNoEventLogOrRecord(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// The provider's error quotes the secret, as a careless client library might.
	leaky := true
	h.prov.SetBefore(func(op, ws string) error {
		if op != "EnsureUser" || !leaky {
			return nil
		}
		c, _, _ := h.vault.GetMember(ctx, "ws-secret", owner)
		return sagas.Permanent(fmt.Errorf("bad request: secret %s rejected", c.SecretKey))
	})
	c := h.coordinator(fastRetries("w1"))
	if err := c.Handle(ctx, create(t, "ws-secret")); err == nil {
		t.Fatal("want the leaky failure")
	}
	leaky = false
	if err := c.Handle(ctx, command(t, "ws-secret", &events.Retry{})); err != nil {
		t.Fatal(err)
	}
	cred, ok, _ := h.vault.GetMember(ctx, "ws-secret", owner)
	if !ok {
		t.Fatal("no credential")
	}
	var all []string
	for _, e := range h.eventsOf("ws-secret") {
		all = append(all, string(e.Data))
	}
	for _, entry := range h.logs.All() {
		all = append(all, entry.Message, fmt.Sprint(entry.ContextMap()))
	}
	raw, _, _ := h.progress.Load(ctx, "ws-secret")
	all = append(all, fmt.Sprintf("%+v", raw))
	for _, s := range all {
		if strings.Contains(s, cred.SecretKey) {
			t.Fatalf("secret leaked: %s", s)
		}
	}
	if !strings.Contains(strings.Join(all, "\n"), "[redacted]") {
		t.Fatal("the leaky error was not recorded at all")
	}
}

func TestLeaseOfAnotherLiveWorkerMakesTheCommandWait(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cmd := create(t, "ws-leased")
	crashAfter(h.prov, "EnsureBucket")
	if crashed, _ := handleCrashing(t, h.coordinator(fastRetries("w1")), cmd); !crashed {
		t.Fatal("no crash")
	}
	other := h.coordinator(fastRetries("w2"))
	if err := other.Handle(ctx, cmd); !errors.Is(err, sagas.ErrBusy) {
		t.Fatalf("err = %v, want ErrBusy while w1's lease lives", err)
	}
	lease := h.record("ws-leased").Lease
	if lease == nil || lease.WorkerID != "w1" {
		t.Fatalf("lease %+v", lease)
	}
	// Poll until w1's lease expires and w2 takes the saga over.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := other.Handle(ctx, cmd)
		if err == nil {
			break
		}
		if !errors.Is(err, sagas.ErrBusy) || time.Now().After(deadline) {
			t.Fatalf("after the lease's expiry (%s): %v", lease.Until, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if time.Now().Before(lease.Until) {
		t.Fatal("took the saga over before the lease expired")
	}
	h.assertProvisioned("ws-leased")
}

func TestCommandsThatMakeNoSenseAreRejected(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	ctx := context.Background()
	if err := c.Handle(ctx, create(t, "ws-x")); err != nil {
		t.Fatal(err)
	}
	_ = h.prov.PutObject("ws-x")
	var failed *sagas.FailedError
	if err := c.Handle(ctx, command(t, "ws-x", &events.Delete{})); !errors.As(err, &failed) {
		t.Fatalf("delete of a non-empty bucket: %v", err)
	}
	cases := map[string]events.Envelope{
		"delete unknown":        command(t, "ws-unknown", &events.Delete{}),
		"retry unknown":         command(t, "ws-unknown", &events.Retry{}),
		"name mismatch":         command(t, "ws-other", &events.Create{PreferredName: "different", DefaultOwner: owner}),
		"create while deleting": create(t, "ws-x"),
		"member add on failed":  command(t, "ws-x", &events.MemberAdd{Username: owner, Role: events.RoleAccess}),
	}
	for name, cmd := range cases {
		var rej *sagas.RejectedError
		if err := c.Handle(ctx, cmd); !errors.As(err, &rej) || rej.Reason == "" {
			t.Errorf("%s: err = %v, want a rejection with a reason", name, err)
		}
	}
}

func TestStopEndsAtAStepBoundaryAndReleasesTheLease(t *testing.T) {
	h := newHarness(t)
	ctx, cancel := context.WithCancel(context.Background())
	h.prov.SetAfter(func(op, _ string) error {
		if op == "EnsureBucket" {
			cancel() // the stop arrives while the bucket step runs
		}
		return nil
	})
	cmd := create(t, "ws-stop")
	if err := h.coordinator(fastRetries("w1")).Handle(ctx, cmd); !errors.Is(err, sagas.ErrStopped) {
		t.Fatalf("err = %v, want ErrStopped", err)
	}
	rec := h.record("ws-stop")
	// The bucket step in flight finished; the MinIO lane started nothing
	// after it (the Keycloak lane stops at its own next step boundary).
	if !slices.Contains(rec.StepsDone, "bucket") || slices.Contains(rec.StepsDone, "policy") ||
		rec.Lease != nil || rec.Status != events.StatusProvisioning {
		t.Fatalf("record after stop %+v", rec)
	}
	h.prov.SetAfter(nil)
	if err := h.coordinator(fastRetries("w2")).Handle(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	h.assertProvisioned("ws-stop")
	if n := h.prov.Calls("EnsureBucket"); n != 1 {
		t.Fatalf("the finished bucket step ran %d times", n)
	}
}

func TestAStaleCreateDoesNotBringADeletedWorkspaceBack(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	ctx := context.Background()
	first := create(t, "ws-gone")
	for _, cmd := range []events.Envelope{first, command(t, "ws-gone", &events.Delete{}), first} {
		if err := c.Handle(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	if rec := h.record("ws-gone"); rec.Status != events.StatusDeleted || !h.prov.Workspace("ws-gone").Empty() {
		t.Fatalf("a redelivered create re-created the workspace: %+v", rec)
	}
	if err := c.Handle(ctx, create(t, "ws-gone")); err != nil || h.record("ws-gone").Status != events.StatusReady {
		t.Fatalf("a new create after the delete: %v", err)
	}
}
