package objectstore

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync/atomic"

	"github.com/minio/madmin-go/v3"

	"github.com/eo-workspaces/provisioner/sagas"
)

// bucketPolicy is the IAM policy of a workspace's credentials: everything
// on its bucket and its objects, and nothing else.
//
// It grants neither s3:ListAllMyBuckets nor anything on "*": MinIO answers
// a ListBuckets from a user without ListAllMyBuckets with just the buckets
// that user may list (cmd/bucket-handlers.go, ListBucketsHandler), so
// clients that start with ListBuckets (mc, rclone, s3fs) still see their
// bucket and learn no other bucket's name. s3:GetBucketLocation, which
// SDKs send before the first request to a bucket, is covered by s3:* on
// the bucket's ARN.
func bucketPolicy(bucket string) ([]byte, error) {
	return policyDoc(statement{
		Effect:   "Allow",
		Action:   []string{"s3:*"},
		Resource: []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
	})
}

// readOnlyActions are what a ws_viewer's keys may do: find, list and read
// the bucket's objects and their versions, nothing that writes, deletes
// or changes a setting.
var readOnlyActions = []string{
	"s3:GetBucketLocation", "s3:ListBucket", "s3:ListBucketVersions",
	"s3:GetObject", "s3:GetObjectVersion", "s3:GetObjectTagging", "s3:GetObjectVersionTagging",
}

// readOnlyPolicy is the IAM policy of a ws_viewer's credentials: read and
// list that bucket and nothing else.
func readOnlyPolicy(bucket string) ([]byte, error) {
	return policyDoc(statement{
		Effect:   "Allow",
		Action:   readOnlyActions,
		Resource: []string{"arn:aws:s3:::" + bucket, "arn:aws:s3:::" + bucket + "/*"},
	})
}

type statement struct {
	Effect    string         `json:"Effect"`
	Action    []string       `json:"Action"`
	Resource  []string       `json:"Resource"`
	Condition map[string]any `json:"Condition,omitempty"`
}

func policyDoc(st ...statement) ([]byte, error) {
	return json.Marshal(struct {
		Version   string      `json:"Version"`
		Statement []statement `json:"Statement"`
	}{Version: "2012-10-17", Statement: st})
}

// EnsureBucketPolicy writes the policy unless one of that name exists.
// MinIO's add-canned-policy silently replaces a policy of that name, and
// policies carry no tags, so the document is the mark: an existing policy
// that allows exactly this bucket is ours (a repeat, or an attempt killed
// after its one write), one with any other document is someone else's and
// is refused, never overwritten, for overwriting it would hand this bucket
// to every user and group it is attached to.
func (s *Store) EnsureBucketPolicy(ctx context.Context, policy, bucket string) error {
	return s.ensurePolicy(ctx, policy, bucket, bucketPolicy)
}

// EnsureReadOnlyPolicy is EnsureBucketPolicy for the read-only policy of
// the bucket (ws_viewer's), with the same rule: its document is its mark.
func (s *Store) EnsureReadOnlyPolicy(ctx context.Context, policy, bucket string) error {
	return s.ensurePolicy(ctx, policy, bucket, readOnlyPolicy)
}

func (s *Store) ensurePolicy(ctx context.Context, policy, bucket string, docOf func(string) ([]byte, error)) error {
	doc, err := docOf(bucket)
	if err != nil {
		return sagas.Permanent(fmt.Errorf("policy %q: %w", policy, err))
	}
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	info, err := s.admin.InfoCannedPolicyV2(ctx, policy)
	switch {
	case errCode(err) == codeNoSuchPolicy:
		return classify(st, s.admin.AddCannedPolicy(ctx, policy, doc), "write policy %q", policy)
	case err != nil:
		return classify(st, err, "read policy %q", policy)
	case !samePolicy(info.Policy, doc):
		return fmt.Errorf("policy %q exists with another document: %w", policy, sagas.ErrNotOurs)
	}
	return nil
}

// samePolicy compares two policy documents as JSON values whose string
// lists are sets: MinIO keeps a statement's actions and resources as sets
// and gives them back in any order, with its own spacing.
func samePolicy(a, b []byte) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(sortStringLists(x), sortStringLists(y))
}

func sortStringLists(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = sortStringLists(e)
		}
	case []any:
		strs := make([]string, 0, len(v))
		for i, e := range v {
			v[i] = sortStringLists(e)
			if s, ok := e.(string); ok {
				strs = append(strs, s)
			}
		}
		if len(strs) == len(v) {
			slices.Sort(strs)
			for i, s := range strs {
				v[i] = s
			}
		}
	}
	return v
}

// DeletePolicy removes the policy, ours only: its document must be the
// one EnsureBucketPolicy writes for the bucket of the same name (the
// sagas name both after the workspace). MinIO refuses to remove a policy
// still attached to a user or group, so ours is first detached from them.
func (s *Store) DeletePolicy(ctx context.Context, policy string) error {
	return s.deletePolicy(ctx, policy, policy, bucketPolicy)
}

// DeleteReadOnlyPolicy removes the read-only policy of bucket, ours only
// (its document must be the one EnsureReadOnlyPolicy writes).
func (s *Store) DeleteReadOnlyPolicy(ctx context.Context, policy, bucket string) error {
	return s.deletePolicy(ctx, policy, bucket, readOnlyPolicy)
}

func (s *Store) deletePolicy(ctx context.Context, policy, bucket string, docOf func(string) ([]byte, error)) error {
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	info, err := s.admin.InfoCannedPolicyV2(ctx, policy)
	if errCode(err) == codeNoSuchPolicy {
		return nil
	}
	if err != nil {
		return classify(st, err, "read policy %q", policy)
	}
	if doc, err := docOf(bucket); err != nil || !samePolicy(info.Policy, doc) {
		return fmt.Errorf("policy %q has another document than its workspace's: %w", policy, sagas.ErrNotOurs)
	}
	err = s.admin.RemoveCannedPolicy(ctx, policy)
	if errCode(err) == codePolicyInUse {
		if err := s.detachEverywhere(ctx, st, policy); err != nil {
			return err
		}
		err = s.admin.RemoveCannedPolicy(ctx, policy)
	}
	if errCode(err) == codeNoSuchPolicy { // this MinIO answers 200 already; older ones 404
		return nil
	}
	return classify(st, err, "delete policy %q", policy)
}

func (s *Store) detachEverywhere(ctx context.Context, st *atomic.Int32, policy string) error {
	ents, err := s.admin.GetPolicyEntities(ctx, madmin.PolicyEntitiesQuery{Policy: []string{policy}})
	if err != nil {
		return classify(st, err, "find users of policy %q", policy)
	}
	for _, pm := range ents.PolicyMappings {
		for _, u := range pm.Users {
			if err := s.detach(ctx, st, madmin.PolicyAssociationReq{Policies: []string{policy}, User: u}); err != nil {
				return err
			}
		}
		for _, g := range pm.Groups {
			if err := s.detach(ctx, st, madmin.PolicyAssociationReq{Policies: []string{policy}, Group: g}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Store) detach(ctx context.Context, st *atomic.Int32, r madmin.PolicyAssociationReq) error {
	_, err := s.admin.DetachPolicy(ctx, r)
	switch errCode(err) {
	case codePolicyAlreadyOnUser, codeNoSuchUser:
		return nil
	}
	return classify(st, err, "detach policy %v from %q%q", r.Policies, r.User, r.Group)
}

// EnsureUser creates the user or resets its secret (MinIO's add-user is an
// upsert), then binds the policy to it.
//
// The binding uses set-user-or-group-policy, which madmin marks
// deprecated, rather than attach: it sets the user's policies to exactly
// this one (what a workspace credential should hold), is idempotent by
// nature, and is not encrypted. madmin encrypts attach's request and
// answer with keys derived by argon2id (64 MiB, under a process-wide
// mutex), four derivations between client and server that made attach the
// slowest call of all, several times add-policy's cost (see
// BenchmarkAdminCall). A MinIO that has dropped the old call answers 426
// XMinioAdminVersionMismatch, and attach takes over.
func (s *Store) EnsureUser(ctx context.Context, accessKey, secretKey, policy string) error {
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	if err := s.admin.AddUser(ctx, accessKey, secretKey); err != nil {
		return classify(st, err, "add user %q", accessKey)
	}
	//lint:ignore SA1019 SetPolicy is 15-20x cheaper than AttachPolicy (no argon2 payload encryption); AttachPolicy is the fallback
	err := s.admin.SetPolicy(ctx, policy, accessKey, false)
	if errCode(err) == codeVersionMismatch {
		return s.attach(ctx, st, accessKey, policy)
	}
	return classify(st, err, "set policy %q on user %q", policy, accessKey)
}

// attach adds the policy to the user's. This MinIO answers an attach that
// changes nothing with 400 XMinioAdminPolicyChangeAlreadyApplied
// (cmd/iam-store.go, policyDBUpdate), which is success here.
func (s *Store) attach(ctx context.Context, st *atomic.Int32, accessKey, policy string) error {
	_, err := s.admin.AttachPolicy(ctx, madmin.PolicyAssociationReq{Policies: []string{policy}, User: accessKey})
	if errCode(err) == codePolicyAlreadyOnUser {
		return nil
	}
	return classify(st, err, "attach policy %q to user %q", policy, accessKey)
}

// UserExists reports whether MinIO knows the access key as a user.
func (s *Store) UserExists(ctx context.Context, accessKey string) (bool, error) {
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	_, err := s.admin.GetUserInfo(ctx, accessKey)
	if errCode(err) == codeNoSuchUser {
		return false, nil
	}
	if err != nil {
		return false, classify(st, err, "look up user %q", accessKey)
	}
	return true, nil
}

// DeleteUser removes the user and, with it, its policy attachment.
func (s *Store) DeleteUser(ctx context.Context, accessKey string) error {
	ctx, st, cancel := s.call(ctx)
	defer cancel()
	err := s.admin.RemoveUser(ctx, accessKey)
	if errCode(err) == codeNoSuchUser {
		return nil
	}
	return classify(st, err, "delete user %q", accessKey)
}
