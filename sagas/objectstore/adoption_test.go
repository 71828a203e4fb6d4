package objectstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/sagatest"
)

// unused stands in for the ports the bucket step never calls.
type unused struct {
	sagas.Vault
	sagas.Names
}

// bucketStep is the create saga's bucket step over this MinIO.
func bucketStep(t *testing.T) sagas.Step {
	t.Helper()
	p, err := sagas.NewProvisioner(sagas.ProvisionerDeps{Identity: sagatest.New(), Store: newStore(t),
		Vault: unused{}, Names: unused{}}, srv.Endpoint(), srv.Region())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Create().Steps {
		if s.Name == "bucket" {
			return s
		}
	}
	t.Fatal("no bucket step")
	return sagas.Step{}
}

// foreignBucket is someone else's bucket, made now with that many
// objects; it returns when MinIO says it was made.
func foreignBucket(t *testing.T, bucket string, objects int) time.Time {
	t.Helper()
	ctx, s3 := ctxFor(t), rootS3(t)
	if err := s3.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: srv.Region()}); err != nil {
		t.Fatal(err)
	}
	for i := range objects {
		body := []byte("someone else's data")
		if _, err := s3.PutObject(ctx, bucket, fmt.Sprintf("o%d", i), bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	all, err := s3.ListBuckets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range all {
		if b.Name == bucket {
			return b.CreationDate
		}
	}
	t.Fatalf("bucket %s not listed", bucket)
	return time.Time{}
}

func objectCount(t *testing.T, bucket string) int {
	t.Helper()
	n := 0
	for o := range rootS3(t).ListObjects(ctxFor(t), bucket, minio.ListObjectsOptions{Recursive: true, WithVersions: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		n++
	}
	return n
}

// A bucket someone else made around the create's start (offset: its
// creation minus the step's recorded start), with or without objects, is
// refused by the bucket step on its first try with the reason, and left
// untagged with its objects. On a resumed try it is refused too when it
// holds objects or is older than the start, to the millisecond.
func TestBucketStepNeverAdoptsAForeignBucketOnMinIO(t *testing.T) {
	step := bucketStep(t)
	offsets := []time.Duration{-time.Minute, -time.Second, -2 * time.Millisecond, -time.Millisecond, 0, time.Millisecond, time.Second}
	for _, objects := range []int{0, 2} {
		for _, off := range offsets {
			for _, fresh := range []bool{true, false} {
				if !fresh && objects == 0 && off >= 0 {
					continue // a half-made bucket of ours looks just so: adopted, see the kill-safety tests
				}
				t.Run(fmt.Sprintf("objects=%d/offset=%s/fresh=%t", objects, off, fresh), func(t *testing.T) {
					b := name(t)
					created := foreignBucket(t, b, objects)
					st := &sagas.State{Workspace: b, StepStarted: created.Add(-off), StepFresh: fresh}
					err := step.Do(ctxFor(t), st)
					if !errors.Is(err, sagas.ErrNotOurs) || !sagas.IsPermanent(err) {
						t.Fatalf("bucket step = %v, want a permanent ErrNotOurs", err)
					}
					t.Logf("refused: %v", err)
					if got := tagsOf(t, b); len(got) != 0 {
						t.Fatalf("the foreign bucket got tags %v", got)
					}
					if got := objectCount(t, b); got != objects {
						t.Fatalf("the foreign bucket holds %d objects, want %d", got, objects)
					}
				})
			}
		}
	}
}
