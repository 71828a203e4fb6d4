package objectstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
	"github.com/minio/minio-go/v7/pkg/tags"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/tracing"
)

// Store implements sagas.ObjectStore against one MinIO deployment. It is
// safe for concurrent use.
type Store struct {
	cfg   Config
	s3    *minio.Client
	admin *madmin.AdminClient
}

var _ sagas.ObjectStore = (*Store)(nil)

// New builds the S3 and admin clients; it does not contact MinIO.
func New(cfg Config) (*Store, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	host, secure, _ := cfg.hostAndSecure()
	creds := credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, "")
	base, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("objectstore: transport: %w", err)
	}
	tr := statusTransport{next: tracing.Transport(base)} // each S3 and admin call a span of the step
	s3, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: cfg.Region, Transport: tr})
	if err != nil {
		return nil, fmt.Errorf("objectstore: s3 client: %w", err)
	}
	admin, err := madmin.NewWithOptions(host, &madmin.Options{Creds: creds, Secure: secure, Transport: tr})
	if err != nil {
		return nil, fmt.Errorf("objectstore: admin client: %w", err)
	}
	return &Store{cfg: cfg, s3: s3, admin: admin}, nil
}

// call bounds one adapter call by the configured timeout and gives it its
// own status recorder for classify.
func (s *Store) call(ctx context.Context) (context.Context, *atomic.Int32, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	ctx, st := withStatus(ctx)
	return ctx, st, cancel
}

// EnsureBucket creates the bucket tagged as ours, or accepts it if it
// already carries our tag. Creating first (rather than looking first)
// keeps the common path to two requests either way.
//
// The create and the tag are two requests: a crash between them leaves an
// untagged bucket that EnsureBucket refuses as not ours; AdoptBucket,
// given when the step first started, finishes the job.
func (s *Store) EnsureBucket(ctx context.Context, bucket string) error {
	if err := validBucket(bucket); err != nil {
		return err
	}
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	err := s.s3.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: s.cfg.Region})
	switch code := errCode(err); {
	case err == nil:
		return s.tagBucket(ctx, st, bucket)
	case code == codeBucketOwnedByYou || code == codeBucketExists:
		return s.checkOurs(ctx, st, bucket)
	default:
		return classify(st, err, "create bucket %q", bucket)
	}
}

// validBucket refuses, as permanent, a name minio-go would refuse before
// sending anything (such errors carry no status to classify by).
func validBucket(bucket string) error {
	if err := s3utils.CheckValidBucketNameStrict(bucket); err != nil {
		return sagas.Permanent(fmt.Errorf("bucket %q: %w", bucket, err))
	}
	return nil
}

func (s *Store) tagBucket(ctx context.Context, st *atomic.Int32, bucket string) error {
	t, err := tags.NewTags(map[string]string{sagas.ManagedByKey: sagas.ManagedByValue}, false)
	if err != nil {
		return sagas.Permanent(fmt.Errorf("tag bucket %q: %w", bucket, err))
	}
	return classify(st, s.s3.SetBucketTagging(ctx, bucket, t), "tag bucket %q", bucket)
}

// checkOurs answers nil for our bucket, ErrNotFound for none and
// ErrNotOurs for one without our tag. This MinIO answers GetBucketTagging
// on a bucket that does not exist with NoSuchTagSet, not NoSuchBucket (it
// reads only bucket metadata), so "no tags" needs a second look.
func (s *Store) checkOurs(ctx context.Context, st *atomic.Int32, bucket string) error {
	t, err := s.s3.GetBucketTagging(ctx, bucket)
	switch code := errCode(err); {
	case err == nil:
		if v := t.ToMap()[sagas.ManagedByKey]; v != sagas.ManagedByValue {
			return fmt.Errorf("bucket %q tagged %s=%q: %w", bucket, sagas.ManagedByKey, v, sagas.ErrNotOurs)
		}
		return nil
	case code == codeNoSuchBucket:
		return fmt.Errorf("bucket %q: %w", bucket, sagas.ErrNotFound)
	case code != codeNoSuchTagSet:
		return classify(st, err, "read tags of bucket %q", bucket)
	}
	exists, err := s.s3.BucketExists(ctx, bucket)
	switch {
	case err != nil:
		return classify(st, err, "look up bucket %q", bucket)
	case !exists:
		return fmt.Errorf("bucket %q: %w", bucket, sagas.ErrNotFound)
	}
	return fmt.Errorf("bucket %q has no tags: %w", bucket, errUntagged)
}

// errUntagged is the ErrNotOurs of a bucket without any tags, the one kind
// AdoptBucket may take over.
var errUntagged = fmt.Errorf("untagged: %w", sagas.ErrNotOurs)

// AdoptBucket tags as ours an untagged, empty bucket created at or after
// since (or whose creation MinIO never finished recording): the bucket an
// EnsureBucket made before a crash kept it from tagging it. A bucket
// holding anything was filled by someone, so it is never taken.
// MinIO gives a bucket's creation time only in ListBuckets, to the
// millisecond. That lists every bucket, which is fine on this rare
// recovery path.
func (s *Store) AdoptBucket(ctx context.Context, bucket string, since time.Time) error {
	if err := validBucket(bucket); err != nil {
		return err
	}
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	if err := s.checkOurs(ctx, st, bucket); !errors.Is(err, errUntagged) {
		return err // ours (nil), none, tagged by someone else, or an outage
	}
	if err := s.madeSince(ctx, st, bucket, since); err != nil {
		return err
	}
	if err := s.holdsNothing(ctx, st, bucket); err != nil {
		return err
	}
	return s.tagBucket(ctx, st, bucket)
}

// madeSince answers nil for a bucket created at or after since, to the
// millisecond.
func (s *Store) madeSince(ctx context.Context, st *atomic.Int32, bucket string, since time.Time) error {
	buckets, err := s.s3.ListBuckets(ctx)
	if err != nil {
		return classify(st, err, "list buckets to date %q", bucket)
	}
	i := slices.IndexFunc(buckets, func(b minio.BucketInfo) bool { return b.Name == bucket })
	if i < 0 {
		return fmt.Errorf("bucket %q: %w", bucket, sagas.ErrNotFound)
	}
	// A zero date: MinIO never saved the bucket's metadata, i.e. the create
	// itself was cut short (seen when the whole stack is SIGKILLed during
	// MakeBucket); a bucket whose create completed always has one.
	if created := buckets[i].CreationDate; !created.IsZero() && created.Before(since.Truncate(time.Millisecond)) {
		return fmt.Errorf("bucket %q has no tags and was created at %s, before this step started at %s: %w",
			bucket, created.UTC().Format(time.RFC3339Nano), since.UTC().Format(time.RFC3339Nano), sagas.ErrNotOurs)
	}
	return nil
}

// holdsNothing answers nil for a bucket without any object version,
// delete marker or unfinished upload; our half-made bucket has none.
func (s *Store) holdsNothing(ctx context.Context, st *atomic.Int32, bucket string) error {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listings after their first item
	if o, ok := <-s.s3.ListObjects(lctx, bucket, minio.ListObjectsOptions{WithVersions: true, Recursive: true, MaxKeys: 1}); ok {
		if o.Err != nil {
			return classify(st, o.Err, "list objects of bucket %q", bucket)
		}
		return fmt.Errorf("bucket %q has no tags and holds objects: %w", bucket, sagas.ErrNotOurs)
	}
	if u, ok := <-s.s3.ListIncompleteUploads(lctx, bucket, "", true); ok {
		if u.Err != nil {
			return classify(st, u.Err, "list uploads of bucket %q", bucket)
		}
		return fmt.Errorf("bucket %q has no tags and holds unfinished uploads: %w", bucket, sagas.ErrNotOurs)
	}
	return nil
}

// DeleteBucket removes our bucket. Without purge MinIO itself refuses a
// bucket holding objects, so nothing is lost to a race with an upload;
// with purge every object version, delete marker and unfinished multipart
// upload goes first.
func (s *Store) DeleteBucket(ctx context.Context, bucket string, purge bool) error {
	if err := validBucket(bucket); err != nil {
		return err
	}
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	if err := s.checkOurs(ctx, st, bucket); errors.Is(err, sagas.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if purge {
		if err := s.purge(ctx, st, bucket); err != nil {
			return err
		}
	}
	err := s.s3.RemoveBucket(ctx, bucket)
	switch errCode(err) {
	case codeNoSuchBucket:
		return nil
	case codeBucketNotEmpty:
		return fmt.Errorf("delete bucket %q: %w", bucket, sagas.ErrNotEmpty)
	}
	return classify(st, err, "delete bucket %q", bucket)
}

func (s *Store) purge(ctx context.Context, st *atomic.Int32, bucket string) error {
	if err := s.removeAllVersions(ctx, st, bucket); err != nil {
		return err
	}
	for u := range s.s3.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			return classify(st, u.Err, "purge bucket %q: list uploads", bucket)
		}
		if err := s.s3.RemoveIncompleteUpload(ctx, bucket, u.Key); err != nil {
			return classify(st, err, "purge bucket %q: abort upload %q", bucket, u.Key)
		}
	}
	return nil
}

// removeAllVersions streams the listing of every version into batched
// deletes. On the first failure it cancels both and drains them, so no
// goroutine outlives the call.
func (s *Store) removeAllVersions(ctx context.Context, st *atomic.Int32, bucket string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	objects := make(chan minio.ObjectInfo)
	listDone := make(chan error, 1)
	go func() {
		defer close(objects)
		for o := range s.s3.ListObjects(ctx, bucket, minio.ListObjectsOptions{WithVersions: true, Recursive: true}) {
			if o.Err != nil {
				listDone <- o.Err
				return
			}
			select {
			case objects <- o:
			case <-ctx.Done():
				listDone <- ctx.Err()
				return
			}
		}
		listDone <- nil
	}()
	var first error
	for e := range s.s3.RemoveObjects(ctx, bucket, objects, minio.RemoveObjectsOptions{GovernanceBypass: true}) {
		if e.Err != nil && first == nil {
			first = classify(st, e.Err, "purge bucket %q: remove %q", bucket, e.ObjectName)
			cancel()
		}
	}
	for range objects { // RemoveObjects may stop reading once cancelled
	}
	if listErr := <-listDone; first == nil && listErr != nil {
		first = classify(st, listErr, "purge bucket %q: list", bucket)
	}
	return first
}
