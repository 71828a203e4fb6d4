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
)

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
