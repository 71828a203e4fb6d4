package objectstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/eo-workspaces/provisioner/sagas"
)

// makeUntagged creates a bucket the way a killed EnsureBucket leaves it:
// created, never tagged.
func makeUntagged(t *testing.T, bucket string) {
	t.Helper()
	if err := rootS3(t).MakeBucket(ctxFor(t), bucket, minio.MakeBucketOptions{Region: srv.Region()}); err != nil {
		t.Fatal(err)
	}
}

func tagsOf(t *testing.T, bucket string) map[string]string {
	t.Helper()
	tg, err := rootS3(t).GetBucketTagging(ctxFor(t), bucket)
	if err != nil {
		return nil
	}
	return tg.ToMap()
}

func TestAdoptBucketTakesTheHalfMadeBucketOfAKilledAttempt(t *testing.T) {
	s, ctx, b := newStore(t), ctxFor(t), name(t)
	started := time.Now()
	makeUntagged(t, b)
	if err := s.EnsureBucket(ctx, b); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("EnsureBucket on the untagged bucket = %v, want ErrNotOurs", err)
	}
	if err := s.AdoptBucket(ctx, b, started); err != nil {
		t.Fatalf("AdoptBucket = %v", err)
	}
	if got := tagsOf(t, b)[sagas.ManagedByKey]; got != sagas.ManagedByValue {
		t.Fatalf("tag after adoption %q", got)
	}
	if err := s.EnsureBucket(ctx, b); err != nil {
		t.Fatalf("EnsureBucket after adoption = %v", err)
	}
	if err := s.AdoptBucket(ctx, b, started); err != nil {
		t.Fatalf("AdoptBucket of our bucket = %v, want success", err)
	}
	if n := countBuckets(t, b); n != 1 {
		t.Fatalf("%d buckets %s", n, b)
	}
}

func TestAdoptBucketRefusesWhatIsNotAKilledAttemptsBucket(t *testing.T) {
	s, ctx := newStore(t), ctxFor(t)

	// Made before the step started: someone else's, and left untouched.
	old := name(t)
	makeUntagged(t, old)
	if err := s.AdoptBucket(ctx, old, time.Now().Add(time.Minute)); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("AdoptBucket of an older bucket = %v, want ErrNotOurs", err)
	}
	if got := tagsOf(t, old); len(got) != 0 {
		t.Fatalf("the older bucket got tags %v", got)
	}

	// Tagged by someone else, however new: never ours.
	other := name(t)
	started := time.Now()
	makeUntagged(t, other)
	tg, _ := tags.NewTags(map[string]string{"owner": "someone"}, false)
	if err := rootS3(t).SetBucketTagging(ctx, other, tg); err != nil {
		t.Fatal(err)
	}
	if err := s.AdoptBucket(ctx, other, started); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("AdoptBucket of a bucket tagged by others = %v, want ErrNotOurs", err)
	}
	if got := tagsOf(t, other); got["owner"] != "someone" || got[sagas.ManagedByKey] != "" {
		t.Fatalf("the other bucket's tags became %v", got)
	}

	// None at all.
	if err := s.AdoptBucket(ctx, name(t), started); !errors.Is(err, sagas.ErrNotFound) {
		t.Fatalf("AdoptBucket of no bucket = %v, want ErrNotFound", err)
	}
}

// The policy document is the policy's mark: ours is accepted as is (a
// repeat, or an attempt killed after its single write), anything else is
// refused and left unchanged.
func TestEnsureBucketPolicyNeverOverwritesAnotherPolicy(t *testing.T) {
	s, ctx, adm := newStore(t), ctxFor(t), rootAdmin(t)
	p := name(t)
	foreign := []byte(`{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["s3:GetObject"],"Resource":["arn:aws:s3:::elsewhere/*"]}]}`)
	if err := adm.AddCannedPolicy(ctx, p, foreign); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureBucketPolicy(ctx, p, p); !errors.Is(err, sagas.ErrNotOurs) || !sagas.IsPermanent(err) {
		t.Fatalf("EnsureBucketPolicy over another policy = %v, want a permanent ErrNotOurs", err)
	}
	info, err := adm.InfoCannedPolicyV2(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if want := "arn:aws:s3:::elsewhere/*"; !strings.Contains(string(info.Policy), want) {
		t.Fatalf("the other policy was changed: %s", info.Policy)
	}
	if err := s.DeletePolicy(ctx, p); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("DeletePolicy of another policy = %v, want ErrNotOurs", err)
	}
	if _, err := adm.InfoCannedPolicyV2(ctx, p); err != nil {
		t.Fatalf("the other policy was removed: %v", err)
	}

	mine := name(t)
	for range 2 { // created, then found as ours
		if err := s.EnsureBucketPolicy(ctx, mine, mine); err != nil {
			t.Fatalf("EnsureBucketPolicy = %v", err)
		}
	}
}
