package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"time"
)

// Command and event types: the CloudEvent `type` values of the contract.
const (
	TypeCreate        = "workspace.create"
	TypeDelete        = "workspace.delete"
	TypeMemberAdd     = "workspace.member.add"
	TypeMemberRemove  = "workspace.member.remove"
	TypeRetry         = "workspace.retry"
	TypeStatusChanged = "workspace.status.changed"
	TypeStepCompleted = "workspace.step.completed"
	TypeStepFailed    = "workspace.step.failed"
	TypeMemberAdded   = "workspace.member.added"
	TypeMemberRemoved = "workspace.member.removed"

	TypeCredentialsRotate  = "workspace.credentials.rotate"
	TypeCredentialsMigrate = "workspace.credentials.migrate"
	TypeCredentialsIssued  = "workspace.credentials.issued"
	TypeCredentialsRevoked = "workspace.credentials.revoked"
	TypeSessionIssued      = "workspace.credentials.session.issued"

	TypeQuotaSet     = "workspace.quota.set"
	TypeQuotaChanged = "workspace.quota.changed"

	TypeShareCreated = "workspace.share.created"
	TypeShareRevoked = "workspace.share.revoked"
	TypeShareExpired = "workspace.share.expired"
	TypeShareUsedUp  = "workspace.share.used_up"

	TypeNameReleased = "workspace.name.released"
)

// Kind tells commands (requests to act) from events (facts that happened).
type Kind int

// The two kinds of message.
const (
	KindCommand Kind = iota + 1
	KindEvent
)

// Payload is the data of one command or event type.
type Payload interface {
	EventType() string
}

// Spec describes one registered type: its kind, its Go type and the last
// tokens of its subject.
type Spec struct {
	Type   string
	Kind   Kind
	Suffix string // subject tokens after the workspace name
	New    func() Payload
}

// Subject returns the subject for a workspace, checking the name first.
func (s Spec) Subject(workspace string) (string, error) {
	if err := ValidateName(workspace); err != nil {
		return "", err
	}
	prefix := CommandSubjectPrefix
	if s.Kind == KindEvent {
		prefix = EventSubjectPrefix
	}
	return prefix + workspace + "." + s.Suffix, nil
}

// registry is the one place that maps type names to Go types; it is
// fixed at compile time, so it needs no lock.
var registry = map[string]Spec{}

func register(kind Kind, suffix string, newFn func() Payload) {
	t := newFn().EventType()
	registry[t] = Spec{Type: t, Kind: kind, Suffix: suffix, New: newFn}
}

//nolint:gochecknoinits // the registry is static data, built once.
func init() {
	register(KindCommand, "create", func() Payload { return &Create{} })
	register(KindCommand, "delete", func() Payload { return &Delete{} })
	register(KindCommand, "member.add", func() Payload { return &MemberAdd{} })
	register(KindCommand, "member.remove", func() Payload { return &MemberRemove{} })
	register(KindCommand, "retry", func() Payload { return &Retry{} })
	register(KindCommand, "credentials.rotate", func() Payload { return &CredentialsRotate{} })
	register(KindCommand, "credentials.migrate", func() Payload { return &CredentialsMigrate{} })
	register(KindCommand, "quota.set", func() Payload { return &QuotaSet{} })
	register(KindCommand, "reconcile", func() Payload { return &Reconcile{} })
	register(KindEvent, "status", func() Payload { return &StatusChanged{} })
	register(KindEvent, "step.completed", func() Payload { return &StepCompleted{} })
	register(KindEvent, "step.failed", func() Payload { return &StepFailed{} })
	register(KindEvent, "member.added", func() Payload { return &MemberAdded{} })
	register(KindEvent, "member.removed", func() Payload { return &MemberRemoved{} })
	register(KindEvent, "credentials.issued", func() Payload { return &CredentialsIssued{} })
	register(KindEvent, "credentials.revoked", func() Payload { return &CredentialsRevoked{} })
	register(KindEvent, "credentials.session.issued", func() Payload { return &SessionIssued{} })
	register(KindEvent, "quota.changed", func() Payload { return &QuotaChanged{} })
	register(KindEvent, "drift.repaired", func() Payload { return &DriftRepaired{} })
	register(KindEvent, "degraded", func() Payload { return &Degraded{} })
	register(KindEvent, "share.created", func() Payload { return &ShareCreated{} })
	register(KindEvent, "share.revoked", func() Payload { return &ShareRevoked{} })
	register(KindEvent, "share.expired", func() Payload { return &ShareExpired{} })
	register(KindEvent, "share.used_up", func() Payload { return &ShareUsedUp{} })
	register(KindEvent, "name.released", func() Payload { return &NameReleased{} })
}

// Lookup returns the spec of a registered type.
func Lookup(eventType string) (Spec, bool) {
	s, ok := registry[eventType]
	return s, ok
}

// Types lists every registered type, sorted.
func Types() []string {
	out := make([]string, 0, len(registry))
	for t := range registry {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Member roles: the Keycloak client roles of a workspace client.
const (
	RoleAccess = "ws_access"
	RoleAdmin  = "ws_admin"
	RoleViewer = "ws_viewer" // reads and lists only
)

// Roles are the workspace roles, the strongest first.
var Roles = []string{RoleAdmin, RoleAccess, RoleViewer}

// Member kinds: a person, or a client application through its service
// account.
const (
	KindUser   = "user"
	KindClient = "client"
)

// Status values of a workspace.
const (
	StatusProvisioning = "provisioning"
	StatusReady        = "ready"
	StatusFailed       = "failed"
	StatusDeleting     = "deleting"
	StatusDeleted      = "deleted"
)

// Create asks for a new workspace.
type Create struct {
	PreferredName string `json:"preferred_name"`
	DefaultOwner  string `json:"default_owner"`
	// QuotaMB, if set, caps what the bucket may hold (MinIO's hard quota).
	QuotaMB *int64 `json:"quota_mb,omitempty"`
}

// Delete asks for a workspace to be removed. Without Purge a bucket that
// still holds objects stops the deletion instead of losing data. Force
// (a platform admin's way out of any state) abandons a run left pending
// instead of finishing it first, and implies Purge.
type Delete struct {
	Purge bool `json:"purge,omitempty"`
	Force bool `json:"force,omitempty"`
}

// MemberAdd grants a user, or a client application's service account
// (ClientID, Username empty), one of the workspace roles; a member who
// holds another role has it changed.
type MemberAdd struct {
	Username string `json:"username,omitempty"`
	ClientID string `json:"client_id,omitempty"`
	Role     string `json:"role"`
}

// MemberRemove takes a user's workspace role away.
type MemberRemove struct {
	Username string `json:"username"`
}

// Retry resumes provisioning that failed, from the step that failed.
type Retry struct{}

// Storage is the non-secret half of a workspace's storage block; the
// credentials themselves never travel in an event.
type Storage struct {
	Bucket   string `json:"bucketname"`
	Endpoint string `json:"endpoint"`
	Region   string `json:"region"`
}

// StatusChanged records a workspace's move to a new status.
type StatusChanged struct {
	Status     string   `json:"status"`
	Previous   string   `json:"previous,omitempty"`
	Owner      string   `json:"owner,omitempty"`
	Step       string   `json:"step,omitempty"`
	LastError  string   `json:"last_error,omitempty"`
	FailedStep string   `json:"failed_step,omitempty"`
	Storage    *Storage `json:"storage,omitempty"`
}

// StepCompleted records that one saga step finished.
type StepCompleted struct {
	Saga string `json:"saga"`
	Step string `json:"step"`
}

// StepFailed records that one saga step failed.
type StepFailed struct {
	Saga      string `json:"saga"`
	Step      string `json:"step"`
	Error     string `json:"error"`
	Retryable bool   `json:"retryable"`
}

// MemberAdded records that a user now holds a workspace role. For a
// client application, Username is its service-account user.
type MemberAdded struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	Kind     string `json:"kind,omitempty"` // KindUser when empty
	ClientID string `json:"client_id,omitempty"`
}

// CredentialsRotate replaces a member's storage key pair (every member's
// with All); the old pair keeps working for GraceSeconds.
type CredentialsRotate struct {
	Username     string `json:"username,omitempty"`
	All          bool   `json:"all,omitempty"`
	GraceSeconds int    `json:"grace_seconds,omitempty"`
}

// CredentialsMigrate moves a workspace made before per-member keys to
// them; the worker publishes it for every such workspace when it starts.
type CredentialsMigrate struct{}

// CredentialsIssued records that a member holds a new storage key pair
// (never the keys themselves).
type CredentialsIssued struct {
	Username string `json:"username"`
	Reason   string `json:"reason"` // joined, rotated, migrated
	// ValidUntil is when the pair it replaced stops working (rotation
	// with grace).
	PreviousValidUntil *time.Time `json:"previous_valid_until,omitempty"`
}

// CredentialsRevoked records that a storage key pair no longer works.
type CredentialsRevoked struct {
	Username string `json:"username"`
	Reason   string `json:"reason"` // removed, rotated, deleted, migrated
}

// SessionIssued records temporary credentials handed to a member (never
// the credentials).
type SessionIssued struct {
	Username   string    `json:"username"`
	Prefix     string    `json:"prefix,omitempty"`
	ReadOnly   bool      `json:"read_only"`
	Expiration time.Time `json:"expiration"`
}

// MaxQuotaMB is the largest quota_mb (1 PiB), as the schemas say.
const MaxQuotaMB = 1 << 30

// QuotaSet sets the bucket's hard quota in MiB (MinIO's MB are 2^20
// bytes), or removes it with nil. The field is always present: null is
// the removal, not a mistake.
type QuotaSet struct {
	QuotaMB *int64 `json:"quota_mb"`
}

// NameReleased records that a deleted workspace's name is free again:
// a platform admin released its hold early (reason "released", the actor
// is the admin) or the hold ran out (reason "expired").
type NameReleased struct {
	Reason    string     `json:"reason"`
	HeldUntil *time.Time `json:"held_until,omitempty"`
}

// Reasons of NameReleased.
const (
	NameReleasedEarly   = "released"
	NameReleasedExpired = "expired"
)

// EventType implements Payload.
func (*NameReleased) EventType() string { return TypeNameReleased }

// QuotaChanged records the bucket's hard quota now in force (nil: none).
type QuotaChanged struct {
	QuotaMB *int64 `json:"quota_mb"`
}

// ShareCreated records a share link made by its creator (the actor);
// never the link's secret.
type ShareCreated struct {
	ID        string    `json:"id"`
	Path      string    `json:"path"`
	ExpiresAt time.Time `json:"expires_at"`
	MaxUses   int       `json:"max_uses,omitempty"` // 0: unlimited
}

// ShareEnded is what the events of a share link's end say: which link,
// and how often it was used.
type ShareEnded struct {
	ID   string `json:"id"`
	Path string `json:"path"`
	Uses int    `json:"uses"`
}

// ShareRevoked records a share link revoked by the actor.
type ShareRevoked ShareEnded

// ShareExpired records a share link past its expiry.
type ShareExpired ShareEnded

// ShareUsedUp records a share link used max_uses times.
type ShareUsedUp ShareEnded

// MemberRemoved records that a user no longer holds a workspace role.
type MemberRemoved struct {
	Username string `json:"username"`
}

// EventType implements Payload.
func (*Create) EventType() string { return TypeCreate }

// EventType implements Payload.
func (*Delete) EventType() string { return TypeDelete }

// EventType implements Payload.
func (*MemberAdd) EventType() string { return TypeMemberAdd }

// EventType implements Payload.
func (*MemberRemove) EventType() string { return TypeMemberRemove }

// EventType implements Payload.
func (*Retry) EventType() string { return TypeRetry }

// EventType implements Payload.
func (*StatusChanged) EventType() string { return TypeStatusChanged }

// EventType implements Payload.
func (*StepCompleted) EventType() string { return TypeStepCompleted }

// EventType implements Payload.
func (*StepFailed) EventType() string { return TypeStepFailed }

// EventType implements Payload.
func (*MemberAdded) EventType() string { return TypeMemberAdded }

// EventType implements Payload.
func (*MemberRemoved) EventType() string { return TypeMemberRemoved }

// EventType implements Payload.
func (*CredentialsRotate) EventType() string { return TypeCredentialsRotate }

// EventType implements Payload.
func (*CredentialsMigrate) EventType() string { return TypeCredentialsMigrate }

// EventType implements Payload.
func (*CredentialsIssued) EventType() string { return TypeCredentialsIssued }

// EventType implements Payload.
func (*CredentialsRevoked) EventType() string { return TypeCredentialsRevoked }

// EventType implements Payload.
func (*SessionIssued) EventType() string { return TypeSessionIssued }

// EventType implements Payload.
func (*QuotaSet) EventType() string { return TypeQuotaSet }

// EventType implements Payload.
func (*QuotaChanged) EventType() string { return TypeQuotaChanged }

// EventType implements Payload.
func (*ShareCreated) EventType() string { return TypeShareCreated }

// EventType implements Payload.
func (*ShareRevoked) EventType() string { return TypeShareRevoked }

// EventType implements Payload.
func (*ShareExpired) EventType() string { return TypeShareExpired }

// EventType implements Payload.
func (*ShareUsedUp) EventType() string { return TypeShareUsedUp }

func decodeStrict(raw []byte, into any) error {
	if len(raw) == 0 {
		raw = []byte("{}")
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return err
	}
	if dec.More() {
		return fmt.Errorf("trailing data after JSON value")
	}
	return nil
}
