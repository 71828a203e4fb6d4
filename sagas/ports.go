package sagas

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/eo-workspaces/provisioner/events"
)

// The ports below are what the sagas need from the world, in the sagas'
// own terms; the adapters beside this package (keycloak, objectstore,
// secrets, progress, names) implement them, and NewApplication is where
// they are plugged in.

// ProgressStore keeps saga records, one per workspace.
type ProgressStore interface {
	// Load returns the record of ws and its revision; revision 0 means none.
	Load(ctx context.Context, ws string) (Record, uint64, error)
	// Save writes r if the stored revision is still rev (0: no record
	// yet) and returns the new revision; ErrRecordChanged if another writer
	// was first.
	Save(ctx context.Context, ws string, r Record, rev uint64) (uint64, error)
}

// ErrRecordChanged means another writer changed the record since it was read.
var ErrRecordChanged = errors.New("saga record changed concurrently")

// EventPublisher publishes envelopes; *events.Publisher is one.
type EventPublisher interface {
	Publish(ctx context.Context, env events.Envelope) (events.Published, error)
}

// Credential is one MinIO access key and its secret. Its String and
// GoString methods hide the secret, so printing one by mistake (a log
// line, an error) does not leak it.
type Credential struct {
	AccessKey string `json:"access_key"`
	SecretKey string `json:"secret_key"`
	// Username is the member the key pair belongs to (empty for the
	// workspace-wide key pair of versions before per-member keys).
	Username string `json:"username,omitempty"`
	// Policy is the MinIO policy the pair is bound to (the member's role's).
	Policy string `json:"policy,omitempty"`
	// RotatedBy is the id of the rotation command that issued the pair,
	// so a repeated rotation step does not replace it again.
	RotatedBy string `json:"rotated_by,omitempty"`
	// Next is the pair a rotation in progress will put in place, stored
	// before its MinIO user is made.
	Next *Credential `json:"next,omitempty"`
	// Pending marks a pair stored before its MinIO user exists: it is
	// kept for a repeat of the step but not shown to its member yet.
	Pending bool `json:"pending,omitempty"`
	// Deferred marks a pending pair left to the Issuer (a member added to
	// a ready workspace); a pending pair without it is made by the saga
	// step that stored it (the owner's, during the create).
	Deferred bool `json:"deferred,omitempty"`
	// Stale marks a pair whose Policy changed (a role change) and that
	// MinIO may still bind to the one before, until a step applies it.
	Stale bool `json:"stale,omitempty"`
	// Removing marks a pair whose member is being removed: the Issuer
	// must not finish it, and undoes a user it made meanwhile.
	Removing bool `json:"removing,omitempty"`
	// CommandID, CorrelationID and Actor are those of the command that
	// asked for a pending pair, for the event that announces it once issued.
	CommandID     string `json:"command_id,omitempty"`
	CorrelationID string `json:"correlation_id,omitempty"`
	Actor         string `json:"actor,omitempty"`
}

// MemberRef names a member's pair: whose, in which workspace.
type MemberRef struct{ Workspace, Username string }

// ErrCredentialChanged means another writer changed a member's pair
// since it was read (Vault.UpdateMember).
var ErrCredentialChanged = errors.New("member credential changed concurrently")

// Retirement is an old key pair that keeps working until Until, after a
// rotation with grace; then it is deleted.
type Retirement struct {
	Workspace, Username, AccessKey string
	Until                          time.Time
	// Actor and CommandID are the rotation's, for the audit trail.
	Actor, CommandID string
}

func (c Credential) String() string {
	return fmt.Sprintf("{AccessKey:%s SecretKey:[redacted]}", c.AccessKey)
}

// GoString implements fmt.GoStringer for %#v.
func (c Credential) GoString() string { return "sagas.Credential" + c.String() }

// Vault keeps workspace credentials encrypted at rest.
type Vault interface {
	// PutIfAbsent stores c unless one is stored, and returns the stored one.
	PutIfAbsent(ctx context.Context, ws string, c Credential) (Credential, error)
	Get(ctx context.Context, ws string) (c Credential, ok bool, err error)
	// Delete removes it; absent is success.
	Delete(ctx context.Context, ws string) error

	// PutMemberIfAbsent, GetMember and DeleteMember do the same for one
	// member's key pair in a workspace; Members lists a workspace's.
	PutMemberIfAbsent(ctx context.Context, ws, username string, c Credential) (Credential, error)
	GetMember(ctx context.Context, ws, username string) (c Credential, ok bool, err error)
	DeleteMember(ctx context.Context, ws, username string) error
	Members(ctx context.Context, ws string) ([]Credential, error)
	// PutMember replaces a member's key pair (a rotation, a role change).
	PutMember(ctx context.Context, ws, username string, c Credential) error
	// GetMemberRev and UpdateMember read and compare-and-set a member's
	// pair (ErrCredentialChanged when another writer was first), for the
	// Issuer, which works beside the sagas; PendingMembers lists the pairs
	// stored as pending, in every workspace.
	GetMemberRev(ctx context.Context, ws, username string) (c Credential, rev uint64, ok bool, err error)
	UpdateMember(ctx context.Context, ws, username string, c Credential, rev uint64) error
	PendingMembers(ctx context.Context) ([]MemberRef, error)

	// Retire records an old key pair to delete once its grace is over;
	// Retirements lists them; Retired forgets one once deleted.
	Retire(ctx context.Context, r Retirement) error
	Retirements(ctx context.Context) ([]Retirement, error)
	Retired(ctx context.Context, r Retirement) error
}

// Names releases a workspace name reservation so the name can be reused.
type Names interface {
	// Hold keeps a deleted workspace's name from being taken until until;
	// a zero until frees it at once.
	Hold(ctx context.Context, name string, until time.Time) error
	// HeldUntil says until when the name is held (zero: it is not).
	HeldUntil(ctx context.Context, name string) (time.Time, error)
}

// Shares forgets a deleted workspace's share links.
type Shares interface {
	DropWorkspace(ctx context.Context, ws string) error
}

// ManagedBy marks every resource this system creates (a Keycloak client
// attribute, a bucket tag), so a step reuses its own and refuses others'.
const (
	ManagedByKey   = "eo-workspaces.managed-by"
	ManagedByValue = "provisioner"
)

// Identity is what the saga steps need from Keycloak. Every method is
// idempotent; errors are classified with this package's kinds.
type Identity interface {
	IdentityInspector
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
	// RoleHolders lists the usernames holding a client role.
	RoleHolders(ctx context.Context, clientID, role string) ([]string, error)
	// RevokeClientRole removes the mapping; absent is success.
	RevokeClientRole(ctx context.Context, clientID, username, role string) error
}

// ObjectStore is what the saga steps need from MinIO.
type ObjectStore interface {
	StoreInspector
	// EnsureBucket creates the bucket (tagged as ours) if absent;
	// ErrNotOurs if it exists untagged or tagged by someone else.
	EnsureBucket(ctx context.Context, bucket string) error
	// AdoptBucket finishes an EnsureBucket a crash cut short between
	// creating the bucket and marking it: a bucket without any tags,
	// holding no object, version or upload, created at or after since (to
	// the millisecond), is tagged as ours. Ours already is success;
	// ErrNotOurs for a bucket tagged otherwise, not empty or made before
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
	// SetBucketQuota sets the bucket's hard quota in bytes, 0 removing it;
	// the same quota again is success.
	SetBucketQuota(ctx context.Context, bucket string, bytes uint64) error
}
