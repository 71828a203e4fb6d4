package objectstore

import (
	"context"
	"fmt"
	"time"

	"github.com/minio/minio-go/v7"
)

// Usage is what a bucket holds, as of MeasuredAt.
type Usage struct {
	Bytes, Objects int64
	MeasuredAt     time.Time
	// Counted is true when the figures come from listing the bucket now,
	// false when from MinIO's scanner (a bucket past the count limit).
	Counted bool
}

// BucketUsage counts the bucket's objects and bytes by listing it, up to
// limit objects; a bigger bucket is measured by MinIO's data-usage
// scanner instead, whose figures are as old as its last cycle (given in
// MeasuredAt). Listing keeps small buckets exact and fresh; the limit
// keeps a GET's cost bounded.
func (s *Store) BucketUsage(ctx context.Context, bucket string, limit int) (Usage, error) {
	u, complete, err := s.countObjects(ctx, bucket, limit)
	if err != nil || complete {
		return u, err
	}
	return s.scannedUsage(ctx, bucket)
}

// countObjects lists at most limit objects; complete is false when the
// bucket holds more.
func (s *Store) countObjects(ctx context.Context, bucket string, limit int) (Usage, bool, error) {
	ctx, st, cancel := s.call(ctx)
	defer cancel() // also ends a listing left early
	u := Usage{MeasuredAt: time.Now().UTC(), Counted: true}
	for o := range s.s3.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			return Usage{}, false, classify(st, o.Err, "count objects of bucket %q", bucket)
		}
		if u.Objects == int64(limit) {
			return u, false, nil
		}
		u.Objects++
		u.Bytes += o.Size
	}
	return u, true, nil
}

// scannedUsage reads the bucket's figures from MinIO's data-usage scanner.
func (s *Store) scannedUsage(ctx context.Context, bucket string) (Usage, error) {
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	info, err := s.admin.DataUsageInfo(ctx)
	if err != nil {
		return Usage{}, classify(st, err, "data usage of bucket %q", bucket)
	}
	b, ok := info.BucketsUsage[bucket]
	if !ok {
		return Usage{}, fmt.Errorf("data usage of bucket %q: not scanned yet", bucket)
	}
	return Usage{Bytes: int64(b.Size), Objects: int64(b.ObjectsCount), MeasuredAt: info.LastUpdate.UTC()}, nil
}
