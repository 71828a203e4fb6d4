package sagas_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

func reconcile(t *testing.T, ws string) events.Envelope { return command(t, ws, &events.Reconcile{}) }

// driftOf returns the repairs and the degraded verdicts among envs.
func driftOf(t *testing.T, envs []events.Envelope) (repaired []events.Repair, degraded []string, readyAgain int) {
	t.Helper()
	for _, e := range envs {
		p, err := e.DecodeData()
		if err != nil {
			t.Fatal(err)
		}
		switch d := p.(type) {
		case *events.DriftRepaired:
			repaired = append(repaired, d.Repaired...)
		case *events.Degraded:
			degraded = append(degraded, d.Reason)
		case *events.StatusChanged:
			if d.Status == events.StatusReady && d.Previous == events.StatusDegraded {
				readyAgain++
			}
		}
	}
	return repaired, degraded, readyAgain
}

// A workspace made before workspace client scopes were turned on, or
// whose scope was removed by hand, gets it from the next reconcile.
func TestReconcileGivesAWorkspaceItsMissingClientScope(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.handleAll(c, command(t, "ws-sc", &events.Create{PreferredName: "sc", DefaultOwner: owner}))
	h.prov.Drop("client_scope", "ws-sc")
	n := len(h.eventsOf("ws-sc"))
	h.handleAll(c, reconcile(t, "ws-sc"))
	repaired, degraded, _ := driftOf(t, h.tail("ws-sc", n))
	want := []events.Repair{{Kind: events.DriftClientScope, Resource: "workspace:ws-sc"}}
	if !slices.Equal(repaired, want) || len(degraded) != 0 {
		t.Fatalf("repaired %v, degraded %v; want %v", repaired, degraded, want)
	}
	if ok, err := h.prov.WorkspaceScopeComplete(context.Background(), "ws-sc"); !ok || err != nil {
		t.Fatalf("scope after reconcile: complete %v (err %v)", ok, err)
	}
}

func TestReconcileRepairsEveryKindOfDriftOnce(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	q := int64(7)
	h.handleAll(c, command(t, "ws-d", &events.Create{PreferredName: "d", DefaultOwner: owner, QuotaMB: &q}))
	h.prov.AddUser(user2)
	h.handleAll(c, add(t, "ws-d", user2, events.RoleViewer))
	ownerKey, _, _ := h.keysOf("ws-d", owner)
	viewerKey, _, _ := h.keysOf("ws-d", user2)

	// Drift made by hand behind the system's back, one of each kind.
	h.prov.DropRole("ws-d", events.RoleViewer)          // the role and user2's mapping to it
	h.prov.MapRole("ws-d", owner, events.RoleAccess)    // an extra role on a member
	h.prov.Drop("bucket", "ws-d")                       // an empty bucket
	h.prov.Drop("policy", "ws-d")                       // the read-write policy
	h.prov.ChangePolicy("ws-d", "elsewhere", true)      // the read-only one's document
	h.prov.Drop("user", ownerKey)                       // a member's key
	h.prov.SetUserPolicy(viewerKey, "ws-d")             // a viewer's key made read-write
	h.prov.DisableUser(context.Background(), viewerKey) //nolint:errcheck // the fake cannot fail here

	n := len(h.eventsOf("ws-d"))
	cmd := reconcile(t, "ws-d")
	h.handleAll(c, cmd)

	st := h.prov.Workspace("ws-d")
	if !st.Bucket || st.ForeignAny || st.Policy != "ws-d" || st.ReadOnlyPolicy != "ws-d" {
		t.Fatalf("storage after reconcile: %+v", st)
	}
	if !slices.Contains(st.Roles, events.RoleViewer) {
		t.Fatalf("roles after reconcile: %v", st.Roles)
	}
	if got := h.mappings("ws-d"); !slices.Equal(got[owner], []string{events.RoleAdmin}) || !slices.Equal(got[user2], []string{events.RoleViewer}) {
		t.Fatalf("mappings after reconcile: %v", got)
	}
	if _, policy, ok := h.keysOf("ws-d", owner); !ok || policy != "ws-d" {
		t.Fatalf("owner's key: policy %q ok %v", policy, ok)
	}
	if u, ok := h.prov.MinioUserOf(viewerKey); !ok || u.Disabled || u.Policy != sagas.ReadOnlyPolicy("ws-d") {
		t.Fatalf("viewer's key after reconcile: %+v exists %v", u, ok)
	}
	if got := h.prov.Quota("ws-d"); got != 7<<20 {
		t.Fatalf("quota after reconcile: %d bytes", got)
	}
	repaired, degraded, _ := driftOf(t, h.tail("ws-d", n))
	want := []events.Repair{
		{Kind: events.DriftClientRole, Resource: events.RoleViewer},
		{Kind: events.DriftRoleMap, Resource: owner},
		{Kind: events.DriftRoleMap, Resource: user2},
		{Kind: events.DriftBucket, Resource: "ws-d"},
		{Kind: events.DriftPolicy, Resource: "ws-d"},
		{Kind: events.DriftPolicy, Resource: sagas.ReadOnlyPolicy("ws-d")},
		{Kind: events.DriftMemberKey, Resource: owner},
		{Kind: events.DriftMemberKey, Resource: user2},
		{Kind: events.DriftQuota, Resource: "ws-d"},
	}
	slices.SortFunc(repaired, compareRepair)
	slices.SortFunc(want, compareRepair)
	if !slices.Equal(repaired, want) || len(degraded) != 0 {
		t.Fatalf("repaired\n got %v\nwant %v\ndegraded %v", repaired, want, degraded)
	}
	for _, e := range h.tail("ws-d", n) {
		if strings.Contains(string(e.Data), ownerKey) || strings.Contains(string(e.Data), viewerKey) {
			t.Fatalf("event %s names a key: %s", e.Type, e.Data)
		}
	}
	if rec := h.record("ws-d"); rec.Status != events.StatusReady || rec.Member != nil || !slices.Contains(rec.MembersApplied, cmd.ID) {
		t.Fatalf("record after reconcile: %s, side run %v", rec.Status, rec.Member)
	}

	// Nothing drifted since: a second sweep repairs and reports nothing,
	// and the same command again is not applied twice.
	n = len(h.eventsOf("ws-d"))
	h.handleAll(c, reconcile(t, "ws-d"), cmd)
	if repaired, degraded, _ := driftOf(t, h.tail("ws-d", n)); len(repaired) != 0 || len(degraded) != 0 {
		t.Fatalf("a sweep over a whole workspace reported %v %v", repaired, degraded)
	}
	if got := summary(t, h.tail("ws-d", n)); len(got) != 0 {
		t.Fatalf("a clean sweep (quiet: no step events) plus a repeated one published %v", got)
	}
}

func compareRepair(a, b events.Repair) int {
	return strings.Compare(a.Kind+"/"+a.Resource, b.Kind+"/"+b.Resource)
}

func TestReconcileRestoresAQuotaChangedLaterAndNoneRemoved(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-q")
	q := int64(3)
	h.handleAll(c, command(t, "ws-q", &events.QuotaSet{QuotaMB: &q}))
	h.prov.Drop("quota", "ws-q")
	h.handleAll(c, reconcile(t, "ws-q"))
	if got := h.prov.Quota("ws-q"); got != 3<<20 {
		t.Fatalf("quota after reconcile: %d bytes", got)
	}
	h.handleAll(c, command(t, "ws-q", &events.QuotaSet{}))
	n := h.prov.Calls("SetBucketQuota")
	h.handleAll(c, reconcile(t, "ws-q"))
	if h.prov.Calls("SetBucketQuota") != n || h.prov.Quota("ws-q") != 0 {
		t.Fatal("a reconcile set a quota the workspace no longer has")
	}
}

func TestForeignBucketDegradesDisablesKeysAndRecoversOnceRemoved(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-f")
	h.handleAll(c, add(t, "ws-f", user2, events.RoleAccess))
	graceKey, _, _ := h.keysOf("ws-f", owner)
	h.handleAll(c, command(t, "ws-f", &events.CredentialsRotate{Username: owner, GraceSeconds: 3600}))
	ownerKey, _, _ := h.keysOf("ws-f", owner)
	userKey, _, _ := h.keysOf("ws-f", user2)
	if graceKey == ownerKey {
		t.Fatal("the rotation kept the owner's key")
	}

	// Deleted by hand, re-created by someone else with an object.
	h.prov.Drop("bucket", "ws-f")
	h.prov.AddForeignBucket("ws-f", time.Now(), 1)
	n := len(h.eventsOf("ws-f"))
	h.handleAll(c, reconcile(t, "ws-f"))

	st := h.prov.Workspace("ws-f")
	if !st.ForeignAny || st.Objects != 1 || h.prov.Calls("AdoptBucket") != 0 {
		t.Fatalf("the stranger's bucket was touched: %+v", st)
	}
	for _, k := range []string{ownerKey, userKey, graceKey} {
		if u, ok := h.prov.MinioUserOf(k); !ok || !u.Disabled {
			t.Fatalf("a member's key still works on the stranger's bucket: %+v exists %v", u, ok)
		}
	}
	rec := h.record("ws-f")
	if rec.Status != events.StatusDegraded || !strings.Contains(rec.LastError, "re-created by someone else") {
		t.Fatalf("record: %s %q", rec.Status, rec.LastError)
	}
	if _, degraded, _ := driftOf(t, h.tail("ws-f", n)); len(degraded) != 1 {
		t.Fatalf("degraded events: %v", degraded)
	}
	// While degraded: membership changes wait, a sweep that finds the same
	// says nothing new.
	var rejected *sagas.RejectedError
	if err := c.Handle(context.Background(), add(t, "ws-f", user2, events.RoleViewer)); !errors.As(err, &rejected) {
		t.Fatalf("member add on a degraded workspace: %v", err)
	}
	n = len(h.eventsOf("ws-f"))
	h.handleAll(c, reconcile(t, "ws-f"))
	if _, degraded, _ := driftOf(t, h.tail("ws-f", n)); len(degraded) != 0 || h.record("ws-f").Status != events.StatusDegraded {
		t.Fatalf("a repeated sweep: degraded events %v, status %s", degraded, h.record("ws-f").Status)
	}

	// The operator removes the stranger's bucket: the next sweep makes
	// ours, enables the same keys and the workspace is ready again.
	h.prov.Drop("bucket", "ws-f")
	n = len(h.eventsOf("ws-f"))
	h.handleAll(c, reconcile(t, "ws-f"))
	if st := h.prov.Workspace("ws-f"); !st.Bucket || st.ForeignAny {
		t.Fatalf("bucket after recovery: %+v", st)
	}
	for _, k := range []string{ownerKey, userKey} {
		if u, ok := h.prov.MinioUserOf(k); !ok || u.Disabled {
			t.Fatalf("a member's key after recovery: %+v exists %v", u, ok)
		}
	}
	if rec := h.record("ws-f"); rec.Status != events.StatusReady || rec.LastError != "" {
		t.Fatalf("record after recovery: %s %q", rec.Status, rec.LastError)
	}
	if _, _, ready := driftOf(t, h.tail("ws-f", n)); ready != 1 {
		t.Fatalf("no status back to ready in %v", summary(t, h.tail("ws-f", n)))
	}
}

func TestForeignClientDegradesAndIsLeftAlone(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-c")
	h.prov.Drop("client", "ws-c")
	h.prov.AddForeign("client", "ws-c")
	h.handleAll(c, reconcile(t, "ws-c"))
	if rec := h.record("ws-c"); rec.Status != events.StatusDegraded || !strings.Contains(rec.LastError, "Keycloak client") {
		t.Fatalf("record: %s %q", rec.Status, rec.LastError)
	}
	if h.prov.Calls("EnsureClientRoles") != 1 || h.prov.Calls("GrantClientRole") != 1 {
		t.Fatal("the stranger's client was changed")
	}
}

func TestReconcileRefusesWhatIsNotReadyOrDegraded(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	var rejected *sagas.RejectedError
	if err := c.Handle(context.Background(), reconcile(t, "ws-none")); !errors.As(err, &rejected) {
		t.Fatalf("reconcile of an unknown workspace: %v", err)
	}
	h.prov.AddForeign("bucket", "ws-x")
	var failed *sagas.FailedError
	if err := c.Handle(context.Background(), create(t, "ws-x")); !errors.As(err, &failed) {
		t.Fatalf("create over a foreign bucket: %v", err)
	}
	if err := c.Handle(context.Background(), reconcile(t, "ws-x")); !errors.As(err, &rejected) || !strings.Contains(rejected.Reason, "failed") {
		t.Fatalf("reconcile of a failed workspace: %v", err)
	}
}

func TestSweepAsksForReadyAndDegradedWorkspacesOnceAnInterval(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-s1")
	h.ready(c, "ws-s2")
	h.prov.AddForeign("bucket", "ws-s3")
	if err := c.Handle(context.Background(), create(t, "ws-s3")); err == nil {
		t.Fatal("create over a foreign bucket succeeded")
	}
	h.prov.Drop("bucket", "ws-s2")
	h.prov.AddForeignBucket("ws-s2", time.Now(), 1)
	h.handleAll(c, reconcile(t, "ws-s2"))
	slot := time.Now().Truncate(time.Minute)
	for range 2 { // two workers sweeping the same interval
		swept, err := sagas.SweepAll(context.Background(), h.progress, h.progress, h.pub, slot, h.log)
		if err != nil || swept.Published != 2 || swept.Degraded != 1 {
			t.Fatalf("swept %+v, %v; want 2 published (ws-s1, ws-s2), 1 degraded", swept, err)
		}
	}
	if sagas.ReconcileID("ws-s1", slot) == sagas.ReconcileID("ws-s1", slot.Add(time.Minute)) ||
		sagas.ReconcileID("ws-s1", slot) == sagas.ReconcileID("ws-s2", slot) {
		t.Fatal("reconcile ids do not tell intervals or workspaces apart")
	}
}

func TestAReconcileCutShortByACrashResumesAndFinishes(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.ready(c, "ws-k")
	ownerKey, _, _ := h.keysOf("ws-k", owner)
	h.prov.Drop("bucket", "ws-k")
	h.prov.Drop("user", ownerKey)
	crashAfter(h.prov, "EnsureBucket")
	cmd := reconcile(t, "ws-k")
	if crashed, err := handleCrashing(t, c, cmd); !crashed {
		t.Fatalf("no crash: %v", err)
	}
	h.prov.SetAfter(nil)
	if rec := h.record("ws-k"); rec.Member == nil || rec.Member.Saga != sagas.SagaReconcile {
		t.Fatalf("the cut-short reconcile is not in the record: %+v", rec.Member)
	}
	// The redelivered command resumes it, on a fresh worker.
	h.handleAll(h.coordinator(fastRetries("w1")), cmd)
	if st := h.prov.Workspace("ws-k"); !st.Bucket || st.ForeignAny {
		t.Fatalf("bucket after the resumed reconcile: %+v", st)
	}
	if _, _, ok := h.keysOf("ws-k", owner); !ok {
		t.Fatal("the owner's key was not repaired")
	}
	if rec := h.record("ws-k"); rec.Member != nil || rec.Status != events.StatusReady || h.prov.Creates("bucket") != 2 {
		t.Fatalf("after the resume: side run %+v, status %s, buckets made %d", rec.Member, rec.Status, h.prov.Creates("bucket"))
	}
}

func TestAReconcileGivesUpSoonDuringAnOutage(t *testing.T) {
	h := newHarness(t)
	cfg := fastRetries("w1")
	cfg.MaxRetryElapsed = 5 * time.Minute // a create would wait this long
	c := h.coordinator(cfg)
	h.ready(c, "ws-o")
	h.prov.SetBefore(func(op, _ string) error {
		if op == "CheckBucket" {
			return errors.New("minio: connection refused")
		}
		return nil
	})
	begin := time.Now()
	err := c.Handle(context.Background(), reconcile(t, "ws-o"))
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Step != "reconcile_storage" {
		t.Fatalf("reconcile during an outage: %v", err)
	}
	if took := time.Since(begin); took > 30*time.Second {
		t.Fatalf("the reconcile held its slot %s", took)
	}
	if rec := h.record("ws-o"); rec.Status != events.StatusReady || rec.Member != nil {
		t.Fatalf("after the failed reconcile: %s, side run %+v", rec.Status, rec.Member)
	}
}
