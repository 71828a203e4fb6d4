package sagas

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// ProvisionerDeps are the ports the provisioning steps act through.
type ProvisionerDeps struct {
	Identity Identity
	Store    ObjectStore
	Vault    Vault
	Names    Names
	Shares   Shares // nil: the workspaces have no share links to forget
	Log      *zap.Logger
	// NameHold is how long a deleted workspace's name stays held (zero:
	// freed at once).
	NameHold time.Duration
	// ObserveDrift, if set, learns what each reconcile repaired and
	// whether it found the workspace degraded; for metrics.
	ObserveDrift func(repaired []events.Repair, degraded bool)
}

// Provisioner defines the sagas of a workspace: create and delete, and the
// side sagas (members.go, rotate.go, migrate.go); ByName finds them.
type Provisioner struct {
	d        ProvisionerDeps
	endpoint string
	region   string
}

// NewProvisioner returns the saga definitions; endpoint and region are the
// S3 endpoint and region reported in a ready workspace's storage block.
func NewProvisioner(d ProvisionerDeps, endpoint, region string) (*Provisioner, error) {
	switch {
	case d.Identity == nil, d.Store == nil, d.Vault == nil, d.Names == nil:
		return nil, errors.New("provisioner: identity, store, vault and names are required")
	case endpoint == "" || region == "":
		return nil, errors.New("provisioner: storage endpoint and region are required")
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
	return &Provisioner{d: d, endpoint: endpoint, region: region}, nil
}

// Create builds a workspace as the README's first lines describe it: a
// Keycloak client with two client roles, the owner holding ws_admin; a
// bucket, a policy for that bucket only, credentials bound to it.
func (p *Provisioner) Create() Saga {
	return Saga{Name: SagaCreate, Running: events.StatusProvisioning, Steps: p.createSteps(), Done: p.ready}
}

func (p *Provisioner) createSteps() []Step {
	// Two lanes, side by side: Keycloak's steps in order, MinIO's in order.
	const identity, storage = "keycloak", "minio"
	return []Step{
		{Name: "keycloak_client", Lane: identity, Do: p.ensureClient, Compensate: p.deleteClient},
		{Name: "keycloak_roles", Lane: identity, Do: p.ensureRoles},               // removed with the client
		{Name: "owner_role", Lane: identity, Do: p.grantOwner, Event: ownerAdded}, // removed with the client
		{Name: "bucket", Lane: storage, Do: p.ensureBucket, Compensate: p.deleteBucket, MarkStart: true},
		{Name: "quota", Lane: storage, Do: p.initialQuota, Events: initialQuotaSet}, // goes with the bucket
		{Name: "policy", Lane: storage, Do: p.ensurePolicy, Compensate: p.deletePolicy},
		{Name: "policy_readonly", Lane: storage, Do: p.ensureReadOnlyPolicy, Compensate: p.deleteReadOnlyPolicy},
		// the owner's key pair; undone with every member's
		{Name: "credentials", Lane: storage, Do: p.ensureOwnerKeys, Compensate: p.revoke},
	}
}

// Delete undoes Create in reverse order. Its first step removes the bucket
// only if it is empty (S3 refuses to delete a non-empty bucket, so the
// check cannot race with an upload); without purge a bucket holding
// objects stops the saga before any credential is revoked.
func (p *Provisioner) Delete() Saga {
	steps := []Step{{Name: "bucket_empty_check", Do: p.deleteBucketIfEmpty}}
	steps = append(steps, Compensations(p.createSteps())...)
	steps = append(steps, Step{Name: "shares", Do: p.dropShares}, Step{Name: "release_name", Do: p.releaseName})
	return Saga{Name: SagaDelete, Running: events.StatusDeleting, Steps: steps, Done: deleted}
}

// ByName returns the saga definition of that name, as a record names it.
// A new saga kind is a method returning its Saga, listed here, and a case
// in CommandHandler.handle that starts it.
func (p *Provisioner) ByName(name string) (Saga, bool) {
	for _, def := range []func() Saga{p.Create, p.Delete, p.MemberAdd, p.MemberRemove, p.Rotate, p.Migrate, p.SetQuota,
		p.Reconcile} {
		if s := def(); s.Name == name {
			return s, true
		}
	}
	return Saga{}, false
}

func (p *Provisioner) ready(st *State) events.StatusChanged {
	return events.StatusChanged{
		Status:  events.StatusReady,
		Owner:   st.Params.Owner,
		Storage: &events.Storage{Bucket: st.Workspace, Endpoint: p.endpoint, Region: p.region},
	}
}

func deleted(*State) events.StatusChanged { return events.StatusChanged{Status: events.StatusDeleted} }

func ownerAdded(st *State) events.Payload {
	return &events.MemberAdded{Username: st.Params.Owner, Role: events.RoleAdmin}
}

func (p *Provisioner) ensureClient(ctx context.Context, st *State) error {
	_, err := p.d.Identity.EnsureClient(ctx, st.Workspace)
	return err
}

func (p *Provisioner) ensureRoles(ctx context.Context, st *State) error {
	return p.d.Identity.EnsureClientRoles(ctx, st.Workspace, events.Roles...)
}

func (p *Provisioner) grantOwner(ctx context.Context, st *State) error {
	err := p.d.Identity.GrantClientRole(ctx, st.Workspace, st.Params.Owner, events.RoleAdmin)
	if errors.Is(err, ErrUnknownUser) {
		return Permanentf("default owner %q does not exist in the realm: %w", st.Params.Owner, err)
	}
	return err
}

// ensureBucket creates the bucket and tags it ours: two requests. A kill
// between them leaves an untagged bucket, which EnsureBucket alone refuses
// as someone else's. An untagged bucket found on the step's very first try
// (StepFresh) is someone else's, however recent: nothing of ours was sent
// before. Only on a later try, resume or retry, when an earlier request's
// answer was lost, may AdoptBucket take an untagged, empty bucket created
// after the step's recorded start. So a stranger's bucket is refused when it
// holds anything, or was made before the step started; the one case left
// is an empty bucket made by someone else within the milliseconds between
// the recorded start and our first request, *and* a kill in that same
// window before the refusal was recorded.
func (p *Provisioner) ensureBucket(ctx context.Context, st *State) error {
	err := p.d.Store.EnsureBucket(ctx, st.Workspace)
	switch {
	case !errors.Is(err, ErrNotOurs) || st.StepStarted.IsZero():
		return err
	case st.StepFresh:
		return fmt.Errorf("bucket %s existed before this create sent its first request: %w", st.Workspace, err)
	}
	return p.d.Store.AdoptBucket(ctx, st.Workspace, st.StepStarted)
}

// The policy and the MinIO user are named after the workspace. The
// policy is one request, and its document is its mark: a policy of that
// name allowing exactly this bucket is ours (a killed attempt's, or a
// repeat), one with any other document is refused, never overwritten,
// since overwriting it would hand our bucket to whoever holds it.
func (p *Provisioner) ensurePolicy(ctx context.Context, st *State) error {
	return p.d.Store.EnsureBucketPolicy(ctx, st.Workspace, st.Workspace)
}

// ensureReadOnlyPolicy is the viewers' policy, with the same rule: its
// document is its mark.
func (p *Provisioner) ensureReadOnlyPolicy(ctx context.Context, st *State) error {
	return p.d.Store.EnsureReadOnlyPolicy(ctx, ReadOnlyPolicy(st.Workspace), st.Workspace)
}

func (p *Provisioner) ensureOwnerKeys(ctx context.Context, st *State) error {
	return p.ensureMemberKeys(ctx, st.Workspace, st.Params.Owner, events.RoleAdmin)
}

// revoke deletes every member's MinIO user, then our copies of their
// secrets.
func (p *Provisioner) revoke(ctx context.Context, st *State) error {
	return p.removeAllKeys(ctx, st.Workspace)
}

func (p *Provisioner) deleteBucketIfEmpty(ctx context.Context, st *State) error {
	if st.Params.Purge {
		return nil // the bucket step removes it with its objects
	}
	err := p.notOursIsGone(st, "bucket", p.d.Store.DeleteBucket(ctx, st.Workspace, false))
	if errors.Is(err, ErrNotEmpty) {
		return Permanentf("bucket %s holds objects; delete the workspace with purge=true to remove them: %w", st.Workspace, err)
	}
	return err
}

func (p *Provisioner) deleteBucket(ctx context.Context, st *State) error {
	return p.notOursIsGone(st, "bucket", p.d.Store.DeleteBucket(ctx, st.Workspace, st.Params.Purge))
}

func (p *Provisioner) deletePolicy(ctx context.Context, st *State) error {
	return p.notOursIsGone(st, "policy", p.d.Store.DeletePolicy(ctx, st.Workspace))
}

func (p *Provisioner) deleteReadOnlyPolicy(ctx context.Context, st *State) error {
	return p.notOursIsGone(st, "policy", p.d.Store.DeleteReadOnlyPolicy(ctx, ReadOnlyPolicy(st.Workspace), st.Workspace))
}

func (p *Provisioner) deleteClient(ctx context.Context, st *State) error {
	return p.notOursIsGone(st, "keycloak client", p.d.Identity.DeleteClient(ctx, st.Workspace))
}

// dropShares forgets the workspace's share links (dead already: the API
// serves a link of a ready workspace only), so a workspace made later
// under the name does not revive them.
func (p *Provisioner) dropShares(ctx context.Context, st *State) error {
	if p.d.Shares == nil {
		return nil
	}
	return p.d.Shares.DropWorkspace(ctx, st.Workspace)
}

// releaseName holds the name for NameHold, then frees it. (The step keeps
// its old name: stored records refer to it.)
func (p *Provisioner) releaseName(ctx context.Context, st *State) error {
	var until time.Time
	if p.d.NameHold > 0 {
		until = time.Now().Add(p.d.NameHold)
	}
	return p.d.Names.Hold(ctx, st.Workspace, until)
}

// notOursIsGone lets a delete finish when a resource of that name exists
// but was never ours (the create failed on it): there is nothing of ours
// to remove, and someone else's resource is never touched.
func (p *Provisioner) notOursIsGone(st *State, what string, err error) error {
	if errors.Is(err, ErrNotOurs) {
		p.d.Log.Warn("delete: leaving a resource this system did not create",
			zap.String("workspace", st.Workspace), zap.String("resource", what), zap.Error(err))
		return nil
	}
	return err
}

// newSecret returns 40 hex characters (160 random bits), the longest
// secret MinIO generates itself.
func newSecret() (string, error) {
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// redactedError hides a secret from an error's text but keeps its chain,
// so errors.Is still sees the provider's kind.
type redactedError struct {
	err    error
	secret string
}

func (e *redactedError) Error() string {
	return strings.ReplaceAll(e.err.Error(), e.secret, "[redacted]")
}
func (e *redactedError) Unwrap() error { return e.err }

func redact(err error, secret string) error {
	if err == nil || secret == "" {
		return err
	}
	return &redactedError{err: err, secret: secret}
}
