package objectstore_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/sagas/objectstore"
)

// member gives a workspace's bucket a user holding the read-write or the
// read-only policy, as the member sagas do.
func member(t *testing.T, s *objectstore.Store, bucket string, readOnly bool) (access, secret string) {
	t.Helper()
	ctx := ctxFor(t)
	policy := bucket
	if readOnly {
		policy = bucket + ".readonly"
		for i := range 2 {
			if err := s.EnsureReadOnlyPolicy(ctx, policy, bucket); err != nil {
				t.Fatalf("EnsureReadOnlyPolicy #%d: %v", i+1, err)
			}
		}
	}
	access, secret = "m"+strings.ReplaceAll(name(t), "-", "")[:12], "member-secret-"+bucket
	if err := s.EnsureUser(ctx, access, secret, policy); err != nil {
		t.Fatalf("EnsureUser: %v", err)
	}
	return access, secret
}

func TestViewerKeysReadAndListButNeverWrite(t *testing.T) {
	ctx, s := ctxFor(t), newStore(t)
	bucket, rwAccess, rwSecret := workspace(t, s)
	if err := put(t, s3As(t, rwAccess, rwSecret), bucket, "a.txt", "x"); err != nil {
		t.Fatalf("read-write member put: %v", err)
	}
	vAccess, vSecret := member(t, s, bucket, true)
	viewer := s3As(t, vAccess, vSecret)
	if err := read(t, viewer, bucket, "a.txt"); err != nil {
		t.Errorf("viewer read: %v", err)
	}
	for o := range viewer.ListObjects(ctx, bucket, minio.ListObjectsOptions{}) {
		if o.Err != nil {
			t.Errorf("viewer list: %v", o.Err)
		}
	}
	if err := put(t, viewer, bucket, "b.txt", "x"); minio.ToErrorResponse(err).Code != "AccessDenied" {
		t.Errorf("viewer put = %v, want AccessDenied", err)
	}
	if err := viewer.RemoveObject(ctx, bucket, "a.txt", minio.RemoveObjectOptions{}); minio.ToErrorResponse(err).Code != "AccessDenied" {
		t.Errorf("viewer delete = %v, want AccessDenied", err)
	}
}

func TestReadOnlyPolicyOfAnotherDocumentIsNotOurs(t *testing.T) {
	ctx, s := ctxFor(t), newStore(t)
	bucket, _, _ := workspace(t, s)
	// the read-write document under the read-only name: someone else's
	if err := s.EnsureBucketPolicy(ctx, bucket+".readonly", bucket); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureReadOnlyPolicy(ctx, bucket+".readonly", bucket); err == nil {
		t.Fatal("EnsureReadOnlyPolicy accepted a policy with another document")
	}
	if err := s.DeleteReadOnlyPolicy(ctx, bucket+".readonly", bucket); err == nil {
		t.Fatal("DeleteReadOnlyPolicy removed a policy with another document")
	}
}

// read fails unless the object can be read.
func read(t *testing.T, c *minio.Client, bucket, key string) error {
	_, err := get(t, c, bucket, key)
	return err
}

// sessionClient is an S3 client with temporary credentials, as boto3
// with aws_session_token would be.
func sessionClient(t *testing.T, sess objectstore.Session) *minio.Client {
	t.Helper()
	c, err := minio.New(srv.Endpoint(), &minio.Options{
		Creds:  credentials.NewStaticV4(sess.AccessKey, sess.SecretKey, sess.SessionToken),
		Region: srv.Region(), MaxRetries: 1,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestSessionIsLimitedToItsBucketAndPrefix(t *testing.T) {
	ctx, s := ctxFor(t), newStore(t)
	bucket, access, secret := workspace(t, s)
	other, _, _ := workspace(t, s)
	sess, err := s.AssumeRole(ctx, access, secret, objectstore.SessionRequest{Bucket: bucket, Prefix: "data/", Duration: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(sess.Expiration); d < 14*time.Minute || d > 16*time.Minute {
		t.Errorf("expiration in %s, want about 15m", d)
	}
	c := sessionClient(t, sess)
	if err := put(t, c, bucket, "data/x.txt", "x"); err != nil {
		t.Errorf("put under the prefix: %v", err)
	}
	for _, key := range []string{"x.txt", "datax.txt"} {
		if err := put(t, c, bucket, key, "x"); minio.ToErrorResponse(err).Code != "AccessDenied" {
			t.Errorf("put %s outside the prefix = %v, want AccessDenied", key, err)
		}
	}
	if err := put(t, c, other, "data/x.txt", "x"); minio.ToErrorResponse(err).Code != "AccessDenied" {
		t.Errorf("put on another bucket = %v, want AccessDenied", err)
	}
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{Prefix: "data/"}) {
		if o.Err != nil {
			t.Errorf("list under the prefix: %v", o.Err)
		}
	}
	for o := range c.ListObjects(ctx, bucket, minio.ListObjectsOptions{}) {
		if minio.ToErrorResponse(o.Err).Code != "AccessDenied" {
			t.Errorf("list of the whole bucket = %v, want AccessDenied", o.Err)
		}
	}
}

func TestReadOnlySessionsAndViewersCannotWrite(t *testing.T) {
	ctx, s := ctxFor(t), newStore(t)
	bucket, access, secret := workspace(t, s)
	if err := put(t, s3As(t, access, secret), bucket, "a.txt", "x"); err != nil {
		t.Fatal(err)
	}
	vAccess, vSecret := member(t, s, bucket, true)
	for name, keys := range map[string][2]string{"read_only asked": {access, secret}, "viewer": {vAccess, vSecret}} {
		sess, err := s.AssumeRole(ctx, keys[0], keys[1], objectstore.SessionRequest{Bucket: bucket, ReadOnly: name != "viewer", Duration: time.Hour})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		c := sessionClient(t, sess)
		if err := read(t, c, bucket, "a.txt"); err != nil {
			t.Errorf("%s: read: %v", name, err)
		}
		if err := put(t, c, bucket, "b.txt", "x"); minio.ToErrorResponse(err).Code != "AccessDenied" {
			t.Errorf("%s: put = %v, want AccessDenied", name, err)
		}
	}
}

// A session dies with its member: removing the user removes the identity
// every key and session of theirs stands on.
func TestRemovedMemberKeysAndSessionsAreRefused(t *testing.T) {
	ctx, s := ctxFor(t), newStore(t)
	bucket, ownerAccess, ownerSecret := workspace(t, s)
	access, secret := member(t, s, bucket, false)
	sess, err := s.AssumeRole(ctx, access, secret, objectstore.SessionRequest{Bucket: bucket, Duration: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if err := put(t, sessionClient(t, sess), bucket, "before.txt", "x"); err != nil {
		t.Fatalf("session put before removal: %v", err)
	}
	if err := s.DeleteUser(ctx, access); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]*minio.Client{"keys": s3As(t, access, secret), "session": sessionClient(t, sess)} {
		if err := put(t, c, bucket, "after.txt", "x"); err == nil {
			t.Errorf("removed member's %s still write", what)
		}
		if err := read(t, c, bucket, "before.txt"); err == nil {
			t.Errorf("removed member's %s still read", what)
		}
	}
	if err := put(t, s3As(t, ownerAccess, ownerSecret), bucket, "owner.txt", "x"); err != nil {
		t.Errorf("the other member's keys: %v", err)
	}
	if _, err := s.AssumeRole(ctx, access, secret, objectstore.SessionRequest{Bucket: bucket, Duration: time.Hour}); !errors.Is(err, objectstore.ErrSTSRefused) {
		t.Errorf("AssumeRole with removed keys = %v, want ErrSTSRefused", err)
	}
}
