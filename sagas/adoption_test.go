package sagas_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// offsets place a foreign bucket's creation around the bucket step's
// recorded start: long before, just before, at, just after.
var offsets = []time.Duration{-time.Hour, -time.Second, -time.Millisecond, 0, time.Millisecond, 50 * time.Millisecond}

// A bucket of the workspace's name that someone else made just before the
// create's first request, at any offset from the step's recorded start and
// with or without objects, is refused: the create fails at the bucket
// step with the reason, a retry refuses it again, and the bucket and its
// objects are left as they were.
func TestForeignBucketMadeAroundTheCreateIsNeverAdopted(t *testing.T) {
	for _, objects := range []int{0, 1} {
		for _, off := range offsets {
			t.Run(fmt.Sprintf("objects=%d/offset=%s", objects, off), func(t *testing.T) {
				h := newHarness(t)
				ws := "ws-stranger"
				h.prov.SetBefore(func(op, name string) error {
					if op == "EnsureBucket" && !h.prov.Workspace(name).Bucket {
						h.prov.AddForeignBucket(name, h.record(name).Started.At.Add(off), objects)
					}
					return nil
				})
				c := h.coordinator(fastRetries("w1"))
				for _, cmd := range []events.Envelope{create(t, ws), command(t, ws, &events.Retry{})} {
					assertRefusedAtBucket(t, c.Handle(context.Background(), cmd))
				}
				if s := h.prov.Workspace(ws); !s.Bucket || !s.ForeignAny || s.Objects != objects {
					t.Fatalf("the foreign bucket was adopted, removed or changed: %+v", s)
				}
				if got := h.prov.Calls("AdoptBucket"); got != 0 {
					t.Errorf("AdoptBucket called %d times, want 0", got)
				}
				if rec := h.record(ws); rec.Status != events.StatusFailed || rec.FailedStep != "bucket" || rec.LastError == "" {
					t.Errorf("record: status %s step %s error %q, want failed at bucket with the reason", rec.Status, rec.FailedStep, rec.LastError)
				}
			})
		}
	}
}

// A worker killed before the create's first request: the resumed run may
// adopt only a half-made bucket, so a foreign bucket holding objects, or
// made before the step started, is refused whatever its date.
func TestForeignBucketFoundOnResumeIsNeverAdoptedWhenNotEmptyOrOlder(t *testing.T) {
	cases := []struct {
		name    string
		off     time.Duration
		objects int
	}{{"older-empty", -time.Millisecond, 0}, {"older-full", -time.Second, 1}, {"newer-full", time.Millisecond, 1}, {"at-start-full", 0, 3}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ws, cmd := "ws-resumed", create(t, "ws-resumed")
			fired := false
			h.prov.SetBefore(func(op, name string) error {
				if op == "EnsureBucket" && !fired {
					fired = true
					h.prov.AddForeignBucket(name, h.record(name).Started.At.Add(tc.off), tc.objects)
					panic(crash{op})
				}
				return nil
			})
			if crashed, err := handleCrashing(t, h.coordinator(fastRetries("w1")), cmd); !crashed {
				t.Fatalf("no crash (err %v)", err)
			}
			h.prov.SetBefore(nil)
			assertRefusedAtBucket(t, h.coordinator(fastRetries("w1")).Handle(context.Background(), cmd))
			if s := h.prov.Workspace(ws); !s.Bucket || !s.ForeignAny || s.Objects != tc.objects {
				t.Fatalf("the foreign bucket was adopted, removed or changed: %+v", s)
			}
		})
	}
}

func assertRefusedAtBucket(t *testing.T, err error) {
	t.Helper()
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Step != "bucket" || failed.Retryable || !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("err = %v, want a permanent not-ours failure at bucket", err)
	}
}
