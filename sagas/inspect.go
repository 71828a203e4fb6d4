package sagas

import "context"

// What a reconcile asks the providers to compare a workspace with what
// its sagas made. Every method only reads, except the few that repair.

// IdentityInspector reads a workspace's client as Keycloak holds it.
type IdentityInspector interface {
	// CheckClient answers nil for our client, ErrNotFound for none and
	// ErrNotOurs for one of that clientId without our mark.
	CheckClient(ctx context.Context, clientID string) error
	// ClientRoles lists the client's roles; ErrNotFound without a client.
	ClientRoles(ctx context.Context, clientID string) ([]string, error)
	// WorkspaceScopeComplete tells whether the workspace's client scope
	// exists with every workspace role mapped into it; true where the
	// deployment gives workspaces no scope. ErrNotOurs for a scope of its
	// name someone else made.
	WorkspaceScopeComplete(ctx context.Context, clientID string) (bool, error)
}

// UserState is a MinIO user as MinIO holds it.
type UserState struct {
	Exists, Enabled bool
	Policies        []string
}

// StoreInspector reads a workspace's bucket, policies and users as MinIO
// holds them, and repairs what a create's Ensure steps cannot.
type StoreInspector interface {
	// CheckBucket answers nil for our bucket, ErrNotFound for none and
	// ErrNotOurs for one without our mark.
	CheckBucket(ctx context.Context, bucket string) error
	// CheckPolicy answers nil when the policy holds exactly the document
	// the workspace's Ensure step writes for bucket (the read-only one
	// when readOnly), ErrNotFound when there is none and ErrNotOurs when
	// its document is another.
	CheckPolicy(ctx context.Context, policy, bucket string, readOnly bool) error
	// ResetPolicy writes that document over the policy's.
	ResetPolicy(ctx context.Context, policy, bucket string, readOnly bool) error
	// User tells whether the user exists, is enabled and which policies
	// it holds.
	User(ctx context.Context, accessKey string) (UserState, error)
	// DisableUser makes MinIO refuse the key pair until EnsureUser enables
	// it again; absent is success.
	DisableUser(ctx context.Context, accessKey string) error
	// BucketQuota is the bucket's hard quota in bytes, 0 for none.
	BucketQuota(ctx context.Context, bucket string) (uint64, error)
}
