package objectstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
)

// workspace provisions a bucket, its policy and a user the way the create
// saga does, each call twice, and returns the user's credentials.
func workspace(t *testing.T, s *objectstore.Store) (bucket, access, secret string) {
	t.Helper()
	ctx := ctxFor(t)
	bucket = name(t)
	access, secret = "ak-"+bucket[len(bucket)-8:], "secret-"+bucket
	for i := range 2 {
		if err := s.EnsureBucket(ctx, bucket); err != nil {
			t.Fatalf("EnsureBucket #%d: %v", i+1, err)
		}
		if err := s.EnsureBucketPolicy(ctx, bucket, bucket); err != nil {
			t.Fatalf("EnsureBucketPolicy #%d: %v", i+1, err)
		}
		if err := s.EnsureUser(ctx, access, secret, bucket); err != nil {
			t.Fatalf("EnsureUser #%d: %v", i+1, err)
		}
	}
	return bucket, access, secret
}

func TestPolicyIsThatBucketOnlyAndIdempotent(t *testing.T) {
	ctx, s, adm, n := ctxFor(t), newStore(t), rootAdmin(t), name(t)
	for i := range 2 {
		if err := s.EnsureBucketPolicy(ctx, n, "the-bucket"); err != nil {
			t.Fatalf("EnsureBucketPolicy #%d: %v", i+1, err)
		}
	}
	//lint:ignore SA1019 InfoCannedPolicy returns the plain document the test compares
	raw, err := adm.InfoCannedPolicy(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Version   string
		Statement []struct {
			Effect   string
			Action   []string
			Resource []string
		}
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Version != "2012-10-17" || len(doc.Statement) != 1 {
		t.Fatalf("policy = %s", raw)
	}
	st := doc.Statement[0]
	res := slices.Sorted(slices.Values(st.Resource))
	if st.Effect != "Allow" || !slices.Equal(st.Action, []string{"s3:*"}) ||
		!slices.Equal(res, []string{"arn:aws:s3:::the-bucket", "arn:aws:s3:::the-bucket/*"}) {
		t.Fatalf("policy = %s", raw)
	}
	// A policy of that name with another document is never overwritten
	// (it would hand this bucket to its holders): not ours.
	if err := s.EnsureBucketPolicy(ctx, n, "other-bucket"); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("EnsureBucketPolicy for another bucket = %v, want ErrNotOurs", err)
	}
	//lint:ignore SA1019 InfoCannedPolicy returns the plain document the test compares
	if raw, _ := adm.InfoCannedPolicy(ctx, n); strings.Contains(string(raw), "other-bucket") || !strings.Contains(string(raw), "the-bucket") {
		t.Fatalf("policy after a refused update = %s", raw)
	}
	// Delete takes only the policy of the bucket named like it.
	if err := s.DeletePolicy(ctx, n); !errors.Is(err, sagas.ErrNotOurs) {
		t.Fatalf("DeletePolicy of a policy for another bucket = %v, want ErrNotOurs", err)
	}
	own := name(t)
	if err := s.EnsureBucketPolicy(ctx, own, own); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.DeletePolicy(ctx, own); err != nil {
			t.Fatalf("DeletePolicy #%d: %v", i+1, err)
		}
	}
	//lint:ignore SA1019 InfoCannedPolicy returns the plain document the test compares
	if _, err := adm.InfoCannedPolicy(ctx, own); madmin.ToErrorResponse(err).Code != "XMinioAdminNoSuchPolicy" {
		t.Fatalf("policy after delete: %v", err)
	}
	if err := adm.RemoveCannedPolicy(ctx, n); err != nil {
		t.Fatal(err)
	}
}

func TestUserLifecycleIsIdempotent(t *testing.T) {
	ctx, s, adm := ctxFor(t), newStore(t), rootAdmin(t)
	bucket, access, _ := workspace(t, s)
	ok, err := s.UserExists(ctx, access)
	if err != nil || !ok {
		t.Fatalf("UserExists = %v, %v", ok, err)
	}
	info, err := adm.GetUserInfo(ctx, access)
	if err != nil {
		t.Fatal(err)
	}
	if info.PolicyName != bucket || info.Status != madmin.AccountEnabled {
		t.Fatalf("user info = policy %q status %q, want %q enabled", info.PolicyName, info.Status, bucket)
	}
	for i := range 2 {
		if err := s.DeleteUser(ctx, access); err != nil {
			t.Fatalf("DeleteUser #%d: %v", i+1, err)
		}
	}
	if ok, err := s.UserExists(ctx, access); err != nil || ok {
		t.Fatalf("UserExists after delete = %v, %v", ok, err)
	}
}

func TestEnsureUserResetsTheSecret(t *testing.T) {
	ctx, s := ctxFor(t), newStore(t)
	bucket, access, oldSecret := workspace(t, s)
	newSecret := oldSecret + "-rotated"
	if err := s.EnsureUser(ctx, access, newSecret, bucket); err != nil {
		t.Fatal(err)
	}
	if err := put(t, s3As(t, access, newSecret), bucket, "k", "v"); err != nil {
		t.Fatalf("new secret refused: %v", err)
	}
	if err := put(t, s3As(t, access, oldSecret), bucket, "k", "v"); err == nil {
		t.Fatal("old secret still accepted")
	}
}

func TestCredentialsReachTheirBucketOnly(t *testing.T) {
	ctx, s := ctxFor(t), newStore(t)
	mine, access, secret := workspace(t, s)
	theirs, _, _ := workspace(t, s)
	c := s3As(t, access, secret)

	if err := put(t, c, mine, "notes/a.txt", "hello"); err != nil {
		t.Fatalf("put in own bucket: %v", err)
	}
	if got, err := get(t, c, mine, "notes/a.txt"); err != nil || got != "hello" {
		t.Fatalf("get from own bucket = %q, %v", got, err)
	}
	var keys []string
	for o := range c.ListObjects(ctx, mine, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list own bucket: %v", o.Err)
		}
		keys = append(keys, o.Key)
	}
	if !slices.Equal(keys, []string{"notes/a.txt"}) {
		t.Fatalf("own bucket lists %v", keys)
	}
	if loc, err := c.GetBucketLocation(ctx, mine); err != nil || loc != srv.Region() {
		t.Fatalf("GetBucketLocation = %q, %v", loc, err)
	}
	// ListBuckets is not granted, yet MinIO answers it with the buckets
	// this user may list: its own, no other names.
	all, err := c.ListBuckets(ctx)
	if err != nil {
		t.Fatalf("ListBuckets: %v", err)
	}
	if len(all) != 1 || all[0].Name != mine {
		t.Fatalf("ListBuckets = %v, want just %s", all, mine)
	}

	if err := put(t, rootS3(t), theirs, "secret.txt", "theirs"); err != nil {
		t.Fatal(err)
	}
	denied := func(what string, err error) {
		t.Helper()
		if code := minio.ToErrorResponse(err).Code; code != "AccessDenied" {
			t.Errorf("%s on another bucket = %v (code %q), want AccessDenied", what, err, code)
		}
	}
	denied("put", put(t, c, theirs, "x.txt", "intruder"))
	_, err = get(t, c, theirs, "secret.txt")
	denied("get", err)
	for o := range c.ListObjects(ctx, theirs, minio.ListObjectsOptions{}) {
		denied("list", o.Err)
		break
	}
	denied("make bucket", c.MakeBucket(ctx, name(t), minio.MakeBucketOptions{}))
}

// Deleting in the delete saga's order leaves no user, policy or bucket,
// and the credentials stop working.
func TestDeleteLeavesNothing(t *testing.T) {
	ctx, s, adm := ctxFor(t), newStore(t), rootAdmin(t)
	bucket, access, secret := workspace(t, s)
	c := s3As(t, access, secret)
	if err := put(t, c, bucket, "data.bin", "payload"); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := s.DeleteUser(ctx, access); err != nil {
			t.Fatalf("DeleteUser #%d: %v", i+1, err)
		}
		if err := s.DeletePolicy(ctx, bucket); err != nil {
			t.Fatalf("DeletePolicy #%d: %v", i+1, err)
		}
		if err := s.DeleteBucket(ctx, bucket, true); err != nil {
			t.Fatalf("DeleteBucket #%d: %v", i+1, err)
		}
	}
	if _, err := adm.GetUserInfo(ctx, access); madmin.ToErrorResponse(err).Code != "XMinioAdminNoSuchUser" {
		t.Errorf("user after delete: %v", err)
	}
	//lint:ignore SA1019 InfoCannedPolicy returns the plain document the test compares
	if _, err := adm.InfoCannedPolicy(ctx, bucket); madmin.ToErrorResponse(err).Code != "XMinioAdminNoSuchPolicy" {
		t.Errorf("policy after delete: %v", err)
	}
	if ok, err := rootS3(t).BucketExists(ctx, bucket); err != nil || ok {
		t.Errorf("bucket after delete: exists=%v, %v", ok, err)
	}
	if err := put(t, c, bucket, "again", "x"); minio.ToErrorResponse(err).Code != "InvalidAccessKeyId" {
		t.Errorf("old credentials after delete = %v, want InvalidAccessKeyId", err)
	}
}

// MinIO refuses to remove a policy still attached to a user; DeletePolicy
// detaches it first, so the delete saga's steps may run in either order.
func TestDeletePolicyStillAttached(t *testing.T) {
	ctx, s, adm := ctxFor(t), newStore(t), rootAdmin(t)
	bucket, access, _ := workspace(t, s)
	if err := adm.RemoveCannedPolicy(ctx, bucket); madmin.ToErrorResponse(err).Code != "XMinioIAMPolicyInUse" {
		t.Fatalf("plain remove of an attached policy = %v, want XMinioIAMPolicyInUse", err)
	}
	if err := s.DeletePolicy(ctx, bucket); err != nil {
		t.Fatalf("DeletePolicy: %v", err)
	}
	//lint:ignore SA1019 InfoCannedPolicy returns the plain document the test compares
	if _, err := adm.InfoCannedPolicy(ctx, bucket); madmin.ToErrorResponse(err).Code != "XMinioAdminNoSuchPolicy" {
		t.Fatalf("policy after delete: %v", err)
	}
	if info, err := adm.GetUserInfo(ctx, access); err != nil || info.PolicyName != "" {
		t.Fatalf("user after policy delete = %+v, %v; want it kept, without the policy", info, err)
	}
	if err := s.DeleteUser(ctx, access); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.DeleteBucket(context.Background(), bucket, true) })
}

// The attach fallback (for a MinIO without set-user-or-group-policy) is
// idempotent too: this MinIO answers an attach that changes nothing with
// XMinioAdminPolicyChangeAlreadyApplied, pinned here.
func TestAttachFallbackIsIdempotent(t *testing.T) {
	ctx, s, adm, n := ctxFor(t), newStore(t), rootAdmin(t), name(t)
	access := "at-" + n[len(n)-8:]
	if err := s.EnsureBucketPolicy(ctx, n, n); err != nil {
		t.Fatal(err)
	}
	if err := adm.AddUser(ctx, access, "secret-"+n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.DeleteUser(context.Background(), access)
		_ = s.DeletePolicy(context.Background(), n)
	})
	for i := range 2 {
		if err := s.Attach(ctx, access, n); err != nil {
			t.Fatalf("attach #%d: %v", i+1, err)
		}
	}
	_, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{n}, User: access})
	if code := madmin.ToErrorResponse(err).Code; code != "XMinioAdminPolicyChangeAlreadyApplied" {
		t.Fatalf("plain second attach = %v (code %q)", err, code)
	}
	if info, err := adm.GetUserInfo(ctx, access); err != nil || info.PolicyName != n {
		t.Fatalf("user info = %+v, %v", info, err)
	}
}

// EnsureUser leaves the user with exactly the workspace policy, whatever
// it held before.
func TestEnsureUserSetsExactlyThePolicy(t *testing.T) {
	ctx, s, adm := ctxFor(t), newStore(t), rootAdmin(t)
	bucket, access, secret := workspace(t, s)
	if _, err := adm.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{"readonly"}, User: access}); err != nil {
		t.Fatal(err)
	}
	if err := s.EnsureUser(ctx, access, secret, bucket); err != nil {
		t.Fatal(err)
	}
	if info, err := adm.GetUserInfo(ctx, access); err != nil || info.PolicyName != bucket {
		t.Fatalf("user info = policy %q, %v; want just %q", info.PolicyName, err, bucket)
	}
	if err := s.EnsureUser(ctx, access, secret, "no-such-policy-"+bucket); !sagas.IsPermanent(err) {
		t.Fatalf("EnsureUser with a missing policy = %v, want permanent", err)
	}
}
