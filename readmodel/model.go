package readmodel

import (
	"slices"
	"time"

	"github.com/eo-workspaces/provisioner/events"
)

// Member is one user's role in a workspace: a person, or a client
// application through its service-account user.
type Member struct {
	Username string `json:"username"`
	Role     string `json:"role"`
	Kind     string `json:"kind,omitempty"` // events.KindUser when empty
	ClientID string `json:"client_id,omitempty"`
}

// Workspace is the projected state of one workspace.
type Workspace struct {
	Name       string          `json:"name"`
	Status     string          `json:"status"`
	Owner      string          `json:"owner,omitempty"`
	Members    []Member        `json:"members"`
	Step       string          `json:"step,omitempty"`
	LastError  string          `json:"last_error,omitempty"`
	FailedStep string          `json:"failed_step,omitempty"`
	Storage    *events.Storage `json:"storage,omitempty"`
	// MemberError is why the latest membership change failed, until a
	// later one succeeds; the workspace's status is not affected.
	MemberError string `json:"last_member_error,omitempty"`
	// QuotaMB is the bucket's hard quota in MiB, nil when it has none.
	QuotaMB   *int64    `json:"quota_mb,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// LastSeq is the stream sequence of the last event applied; an event
	// at or below it is a redelivery and changes nothing.
	LastSeq       uint64 `json:"last_seq"`
	CorrelationID string `json:"correlation_id,omitempty"`
}

// Apply folds one event into ws and reports whether it changed anything.
// It is pure, so replaying the stream rebuilds the same model.
func Apply(ws *Workspace, env events.Envelope, seq uint64) (bool, error) {
	if seq != 0 && seq <= ws.LastSeq {
		return false, nil
	}
	p, err := env.DecodeData()
	if err != nil {
		return false, err
	}
	if ws.Name == "" {
		ws.Name = env.Subject
		ws.CreatedAt = env.Time
	}
	switch e := p.(type) {
	case *events.StatusChanged:
		applyStatus(ws, e)
	case *events.StepCompleted:
		if !membershipSaga(e.Saga) {
			ws.Step = e.Step
		}
	case *events.StepFailed:
		if membershipSaga(e.Saga) {
			ws.MemberError = e.Error
		} else {
			ws.LastError, ws.FailedStep = e.Error, e.Step
		}
	case *events.MemberAdded:
		setMember(ws, Member{Username: e.Username, Role: e.Role, Kind: e.Kind, ClientID: e.ClientID})
		ws.MemberError = ""
	case *events.QuotaChanged:
		ws.QuotaMB = e.QuotaMB
	case *events.Degraded:
		// ready again comes as a status change, which clears last_error
		ws.Status, ws.LastError, ws.FailedStep = events.StatusDegraded, e.Reason, ""
	case *events.ShareCreated, *events.ShareRevoked, *events.ShareExpired, *events.ShareUsedUp,
		*events.CredentialsIssued, *events.NameReleased:
		// A link's life is not the workspace's: the API publishes these
		// at any time (an expiry too), and the workspace's updated_at must
		// not move past a delete the API accepted and shows as deleting.
		// The same holds for a member's keys, which the worker's issuer
		// makes outside the workspace's sagas, and for the release of a
		// deleted workspace's name.
		ws.LastSeq = seq
		return true, nil
	case *events.MemberRemoved:
		ws.Members = slices.DeleteFunc(ws.Members, func(m Member) bool { return m.Username == e.Username })
		ws.MemberError = ""
	default:
		// Commands never reach the events stream; other types carry
		// nothing the read model shows.
	}
	ws.LastSeq = seq
	ws.UpdatedAt = env.Time
	ws.CorrelationID = env.CorrelationID
	return true, nil
}

func applyStatus(ws *Workspace, e *events.StatusChanged) {
	ws.Status = e.Status
	if e.Owner != "" {
		ws.Owner = e.Owner
	}
	if e.Step != "" {
		ws.Step = e.Step
	}
	if e.Storage != nil {
		ws.Storage = e.Storage
	}
	ws.LastError, ws.FailedStep = "", ""
	if e.Status == events.StatusFailed {
		ws.LastError, ws.FailedStep = e.LastError, e.FailedStep
	}
	if e.Status == events.StatusDeleted {
		ws.Storage = nil
		ws.Members = nil
		ws.MemberError = ""
		ws.QuotaMB = nil
	}
}

// membershipSaga tells the sagas of membership changes, whose steps are
// not the workspace's provisioning and whose failures leave its status be.
// (Credential rotations and quota changes run beside the workspace the
// same way.)
func membershipSaga(saga string) bool {
	return saga == "member_add" || saga == "member_remove" || saga == "credentials_rotate" || saga == "migrate" ||
		saga == "quota_set" || saga == "reconcile"
}

func setMember(ws *Workspace, m Member) {
	if m.Kind == "" {
		m.Kind = events.KindUser
	}
	for i := range ws.Members {
		if ws.Members[i].Username == m.Username {
			ws.Members[i] = m
			return
		}
	}
	ws.Members = append(ws.Members, m)
}

// RoleOf returns the user's workspace role, or "" if not a member.
func (ws *Workspace) RoleOf(username string) string {
	for _, m := range ws.Members {
		if m.Username == username {
			return m.Role
		}
	}
	return ""
}

// CanRead reports whether username may read ws without being a platform
// admin: a member may, and so may the default owner while the create has
// not made them a member yet (until its owner role step, a workspace has
// no members; the last-admin rule keeps one ever after).
func (ws *Workspace) CanRead(username string) bool {
	return slices.Contains(ws.Readers(), username)
}

// Readers are the users CanRead lets in; the list index files each
// workspace under them.
func (ws *Workspace) Readers() []string {
	users := make([]string, 0, len(ws.Members)+1)
	for _, m := range ws.Members {
		users = append(users, m.Username)
	}
	creating := ws.Status == events.StatusProvisioning || ws.Status == events.StatusFailed
	if creating && len(ws.Members) == 0 && ws.Owner != "" {
		users = append(users, ws.Owner)
	}
	return users
}
