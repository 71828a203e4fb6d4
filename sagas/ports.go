package sagas

import (
	"context"
	"time"
)

// ManagedBy marks every resource this system creates (a Keycloak client
// attribute, a bucket tag), so a step reuses its own and refuses others'.
const (
	ManagedByKey   = "eo-workspaces.managed-by"
	ManagedByValue = "provisioner"
)

// Identity is what the saga steps need from Keycloak. Every method is
// idempotent; errors are classified with this package's kinds.
type Identity interface {
	// EnsureClient finds the client by clientId and returns its id,
	// creating it (marked as ours) if absent; ErrNotOurs if it exists
	// without our mark.
	EnsureClient(ctx context.Context, clientID string) (id string, err error)
	// DeleteClient removes our client and its roles; absent is success,
	// ErrNotOurs if it is someone else's.
	DeleteClient(ctx context.Context, clientID string) error
	// EnsureClientRoles creates the named client roles if absent.
	EnsureClientRoles(ctx context.Context, clientID string, roles ...string) error
	// GrantClientRole maps a user to a client role; already mapped is
	// success; ErrUnknownUser if no such user.
	GrantClientRole(ctx context.Context, clientID, username, role string) error
	// ServiceAccountUser returns the username of a client application's
	// service-account user; ErrUnknownUser if there is no such client or
	// it has no service account.
	ServiceAccountUser(ctx context.Context, clientID string) (string, error)
	// RevokeClientRole removes the mapping; absent is success.
	RevokeClientRole(ctx context.Context, clientID, username, role string) error
}

// ObjectStore is what the saga steps need from MinIO.
type ObjectStore interface {
	// EnsureBucket creates the bucket (tagged as ours) if absent;
	// ErrNotOurs if it exists untagged or tagged by someone else.
	EnsureBucket(ctx context.Context, bucket string) error
	// AdoptBucket finishes an EnsureBucket a crash cut short between
	// creating the bucket and marking it: a bucket without any tags,
	// created at or after since, is tagged as ours. Ours already is
	// success; ErrNotOurs for a bucket tagged otherwise or made before
	// since; ErrNotFound for none.
	AdoptBucket(ctx context.Context, bucket string, since time.Time) error
	// DeleteBucket removes our bucket; absent is success. With purge false
	// a bucket holding objects fails with ErrNotEmpty and is left as is.
	DeleteBucket(ctx context.Context, bucket string, purge bool) error
	// EnsureBucketPolicy creates an IAM policy that allows that bucket
	// and nothing else; one of that name with exactly that document is
	// ours already (success), one with any other is ErrNotOurs.
	EnsureBucketPolicy(ctx context.Context, policy, bucket string) error
	// DeletePolicy removes the policy of the bucket of the same name;
	// absent is success, ErrNotOurs if its document is another.
	DeletePolicy(ctx context.Context, policy string) error
	// EnsureReadOnlyPolicy and DeleteReadOnlyPolicy are the same for the
	// bucket's read-only policy, named policy.
	EnsureReadOnlyPolicy(ctx context.Context, policy, bucket string) error
	DeleteReadOnlyPolicy(ctx context.Context, policy, bucket string) error
	// EnsureUser creates or updates a user with that secret and attaches
	// the policy (already attached is success).
	EnsureUser(ctx context.Context, accessKey, secretKey, policy string) error
	// UserExists tells whether a user with that access key exists.
	UserExists(ctx context.Context, accessKey string) (bool, error)
	// DeleteUser removes the user; absent is success.
	DeleteUser(ctx context.Context, accessKey string) error
}
