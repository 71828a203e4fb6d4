package objectstore_test

import (
	"bytes"
	"testing"

	"github.com/minio/minio-go/v7"
)

func TestQuotaRefusesAnObjectPastItAndCanBeRaisedOrRemoved(t *testing.T) {
	s, ctx, bucket := newStore(t), ctxFor(t), name(t)
	if err := s.EnsureBucket(ctx, bucket); err != nil {
		t.Fatal(err)
	}
	put := func(size int) error {
		_, err := rootS3(t).PutObject(ctx, bucket, "big", bytes.NewReader(make([]byte, size)), int64(size), minio.PutObjectOptions{})
		return err
	}
	if err := s.SetBucketQuota(ctx, bucket, 1<<20); err != nil {
		t.Fatal(err)
	}
	if err := s.SetBucketQuota(ctx, bucket, 1<<20); err != nil { // a repeat is a no-op
		t.Fatal(err)
	}
	if err := put(2 << 20); err == nil {
		t.Fatal("a 2 MiB object passed a 1 MiB quota")
	}
	if err := s.SetBucketQuota(ctx, bucket, 0); err != nil {
		t.Fatal(err)
	}
	if err := put(2 << 20); err != nil {
		t.Fatalf("after removing the quota: %v", err)
	}
	u, err := s.BucketUsage(ctx, bucket, 10)
	if err != nil || u.Bytes != 2<<20 || u.Objects != 1 || !u.Counted {
		t.Fatalf("usage %+v (%v)", u, err)
	}
}
