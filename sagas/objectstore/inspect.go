package objectstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/minio/madmin-go/v3"

	"github.com/eo-workspaces/provisioner/sagas"
)

// What a reconcile reads of a workspace's bucket, policies and users.

var _ sagas.StoreInspector = (*Store)(nil)

// codeNoSuchQuota is the answer for a bucket without a quota.
const codeNoSuchQuota = "XMinioAdminNoSuchQuotaConfiguration"

// CheckBucket answers nil for our bucket, ErrNotFound for none and
// ErrNotOurs for one without our tag.
func (s *Store) CheckBucket(ctx context.Context, bucket string) error {
	if err := validBucket(bucket); err != nil {
		return err
	}
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	return s.checkOurs(ctx, st, bucket)
}

// CheckPolicy compares the policy with the document the workspace's
// Ensure step writes for bucket.
func (s *Store) CheckPolicy(ctx context.Context, policy, bucket string, readOnly bool) error {
	doc, err := docFor(bucket, readOnly)
	if err != nil {
		return sagas.Permanent(fmt.Errorf("policy %q: %w", policy, err))
	}
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	info, err := s.admin.InfoCannedPolicyV2(ctx, policy)
	switch {
	case errCode(err) == codeNoSuchPolicy:
		return fmt.Errorf("policy %q: %w", policy, sagas.ErrNotFound)
	case err != nil:
		return classify(st, err, "read policy %q", policy)
	case !samePolicy(info.Policy, doc):
		return fmt.Errorf("policy %q has another document than its workspace's: %w", policy, sagas.ErrNotOurs)
	}
	return nil
}

// ResetPolicy writes the workspace's document over the policy's (MinIO's
// add-canned-policy replaces a policy of that name, bindings kept).
func (s *Store) ResetPolicy(ctx context.Context, policy, bucket string, readOnly bool) error {
	doc, err := docFor(bucket, readOnly)
	if err != nil {
		return sagas.Permanent(fmt.Errorf("policy %q: %w", policy, err))
	}
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	return classify(st, s.admin.AddCannedPolicy(ctx, policy, doc), "rewrite policy %q", policy)
}

func docFor(bucket string, readOnly bool) ([]byte, error) {
	if readOnly {
		return readOnlyPolicy(bucket)
	}
	return bucketPolicy(bucket)
}

// User reads a user's status and policies; a user that does not exist
// is a zero UserState.
func (s *Store) User(ctx context.Context, accessKey string) (sagas.UserState, error) {
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	info, err := s.admin.GetUserInfo(ctx, accessKey)
	if errCode(err) == codeNoSuchUser {
		return sagas.UserState{}, nil
	}
	if err != nil {
		return sagas.UserState{}, classify(st, err, "look up user %q", accessKey)
	}
	var policies []string
	for p := range strings.SplitSeq(info.PolicyName, ",") {
		if p = strings.TrimSpace(p); p != "" {
			policies = append(policies, p)
		}
	}
	return sagas.UserState{Exists: true, Enabled: info.Status == madmin.AccountEnabled, Policies: policies}, nil
}

// DisableUser makes MinIO refuse the key pair (and the sessions issued
// to it); EnsureUser's add-user enables it again.
func (s *Store) DisableUser(ctx context.Context, accessKey string) error {
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	err := s.admin.SetUserStatus(ctx, accessKey, madmin.AccountDisabled)
	if errCode(err) == codeNoSuchUser {
		return nil
	}
	return classify(st, err, "disable user %q", accessKey)
}

// BucketQuota reads the bucket's hard quota in bytes, 0 for none.
func (s *Store) BucketQuota(ctx context.Context, bucket string) (uint64, error) {
	if err := validBucket(bucket); err != nil {
		return 0, err
	}
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	q, err := s.admin.GetBucketQuota(ctx, bucket)
	switch {
	case errCode(err) == codeNoSuchQuota:
		return 0, nil
	case errCode(err) == codeNoSuchBucket:
		return 0, fmt.Errorf("bucket %q: %w", bucket, sagas.ErrNotFound)
	case err != nil:
		return 0, classify(st, err, "read quota of bucket %q", bucket)
	}
	if q.Size > 0 {
		return q.Size, nil
	}
	// older servers fill only the field Size replaced
	return q.Quota, nil
}
