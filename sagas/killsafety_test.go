package sagas_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// A worker killed between creating the bucket and tagging it leaves an
// untagged bucket; the resumed run recognises it as its own (made after the
// bucket step first started) and finishes it, creating nothing twice.
func TestBucketHalfMadeByAKilledAttemptIsAdopted(t *testing.T) {
	h := newHarness(t)
	cmd := create(t, "ws-half")
	fired := false
	h.prov.SetBefore(func(op, name string) error {
		if op == "EnsureBucket" && !fired {
			fired = true
			h.prov.AddHalfMade(name) // MakeBucket answered, then the kill
			panic(crash{op})
		}
		return nil
	})
	if crashed, err := handleCrashing(t, h.coordinator(fastRetries("w1")), cmd); !crashed {
		t.Fatalf("no crash (err %v)", err)
	}
	if rec := h.record("ws-half"); rec.Started == nil || rec.Started.Step != "bucket" || rec.Started.At.IsZero() {
		t.Fatalf("record before the kill does not say the bucket step started: %+v", rec.Started)
	}
	h.prov.SetBefore(nil)
	if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	h.assertProvisioned("ws-half")
	if s := h.prov.Workspace("ws-half"); s.ForeignAny {
		t.Fatalf("the half-made bucket is still not ours: %+v", s)
	}
	if got := h.prov.Calls("AdoptBucket"); got != 1 {
		t.Errorf("AdoptBucket called %d times, want 1", got)
	}
	if rec := h.record("ws-half"); rec.Started != nil || rec.Status != events.StatusReady {
		t.Errorf("record after the resume: started %+v status %s, want no pending start, ready", rec.Started, rec.Status)
	}
}

// Only the bucket step records its start: one extra record write per create.
func TestOnlyTheBucketStepRecordsItsStart(t *testing.T) {
	h := newHarness(t)
	var mu sync.Mutex // the two lanes call in at once
	var seen []string
	h.prov.SetBefore(func(op, name string) error {
		if rec := h.record(name); rec.Started != nil {
			mu.Lock()
			seen = append(seen, op+":"+rec.Started.Step)
			mu.Unlock()
		}
		return nil
	})
	if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), create(t, "ws-mark")); err != nil {
		t.Fatal(err)
	}
	// The Keycloak lane runs beside the bucket step and may see its mark;
	// no other MinIO call, and no other step's mark, may appear.
	if !slices.Contains(seen, "EnsureBucket:bucket") {
		t.Fatalf("EnsureBucket ran without its recorded start: %v", seen)
	}
	for _, s := range seen {
		op, step, _ := strings.Cut(s, ":")
		if step != "bucket" || op == "EnsureBucketPolicy" || op == "EnsureUser" || op == "UserExists" {
			t.Fatalf("calls made with a recorded start: %v, want only the bucket step's", seen)
		}
	}
}

// An untagged bucket that existed before the step started is someone
// else's: refused, and still refused when the failed saga is retried
// (the recorded start is kept, so time passing does not make it ours).
func TestUntaggedBucketFromBeforeTheStepIsNeverAdopted(t *testing.T) {
	h := newHarness(t)
	c := h.coordinator(fastRetries("w1"))
	h.prov.AddForeign("bucket", "ws-old")
	for _, cmd := range []events.Envelope{create(t, "ws-old"), command(t, "ws-old", &events.Retry{})} {
		err := c.Handle(context.Background(), cmd)
		var failed *sagas.FailedError
		if !errors.As(err, &failed) || failed.Step != "bucket" || failed.Retryable || !errors.Is(err, sagas.ErrNotOurs) {
			t.Fatalf("%s: err = %v, want a permanent not-ours failure at bucket", cmd.Type, err)
		}
	}
	if s := h.prov.Workspace("ws-old"); !s.Bucket || !s.ForeignAny {
		t.Fatalf("the foreign bucket was adopted or removed: %+v", s)
	}
}

// A policy of the workspace's name with another document is someone
// else's: overwriting it would give its users our bucket.
func TestForeignPolicyIsNeverOverwritten(t *testing.T) {
	h := newHarness(t)
	h.prov.AddForeign("policy", "ws-pol")
	err := h.coordinator(fastRetries("w1")).Handle(context.Background(), create(t, "ws-pol"))
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Step != "policy" || failed.Retryable || !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("err = %v, want a permanent not-ours failure at policy", err)
	}
	if s := h.prov.Workspace("ws-pol"); s.Policy != "someone-elses-bucket" || s.User != nil {
		t.Fatalf("the foreign policy was overwritten or used: %+v", s)
	}
	// Deleting the failed workspace removes what is ours, not that policy.
	if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), command(t, "ws-pol", &events.Delete{})); err != nil {
		t.Fatal(err)
	}
	if s := h.prov.Workspace("ws-pol"); s.Policy != "someone-elses-bucket" || s.Client || s.Bucket {
		t.Fatalf("after delete: %+v, want only the foreign policy left", s)
	}
}
