package objectstore

import (
	"context"

	"github.com/minio/madmin-go/v3"
)

// SetBucketQuota sets the bucket's hard quota to bytes, or removes it
// with 0 (MinIO deletes a quota whose size is zero). Setting the same
// quota twice is a no-op, so the step may repeat.
//
// MinIO refuses at once a PUT larger than the whole quota; what the
// bucket holds already counts from its scanner's usage figures, which
// lag behind the writes (a scanner cycle, about a minute on an idle
// server), so a bucket may overshoot its quota by the writes of that lag.
func (s *Store) SetBucketQuota(ctx context.Context, bucket string, bytes uint64) error {
	if err := validBucket(bucket); err != nil {
		return err
	}
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	q := &madmin.BucketQuota{}
	if bytes > 0 {
		q.Size, q.Type = bytes, madmin.HardQuota
	}
	return classify(st, s.admin.SetBucketQuota(ctx, bucket, q), "set quota of bucket %q to %d bytes", bucket, bytes)
}
