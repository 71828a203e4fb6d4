package sagas

import (
	"context"
	"time"

	"github.com/eo-workspaces/provisioner/events"
)

// Saga names, as they appear in saga records and step events.
const (
	SagaCreate       = "create"
	SagaDelete       = "delete"
	SagaMemberAdd    = "member_add"
	SagaMemberRemove = "member_remove"
	SagaRotate       = "credentials_rotate"
	SagaMigrate      = "migrate"
	SagaQuota        = "quota_set"
	SagaReconcile    = "reconcile"
)

// Step is one named, idempotent unit of a saga. Running Do twice, or
// after a crash halfway through, must leave the same result as once.
type Step struct {
	Name string // lowercase snake case: it appears in events
	Do   func(ctx context.Context, st *State) error
	// Compensate undoes Do, idempotently too; nil when the step needs no
	// undoing of its own (its resource goes away with another one).
	Compensate func(ctx context.Context, st *State) error
	// Event, if set, returns a domain event published once the step is
	// done (e.g. the owner became a member).
	Event func(st *State) events.Payload
	// Events, if set, returns more domain events published once the step
	// is done, one per item it handled (e.g. each member whose keys a
	// rotation replaced).
	Events func(st *State) []events.Payload
	// MarkStart asks the engine to save in the record when the step first
	// started, before its first attempt, and to pass it in
	// State.StepStarted: a step whose side effect takes two provider calls
	// (create, then mark as ours) can then tell the half-made resource of
	// an attempt a crash cut short (made after that time) from someone
	// else's (made before it).
	MarkStart bool
	// Lane, if set, lets the step run beside the steps of other lanes
	// that stand next to it in the saga; steps of one lane run in order.
	// Keycloak and MinIO know nothing of each other, so a workspace's
	// client and its bucket are made side by side.
	Lane string
}

// Saga is an ordered list of steps and what the record keeps around
// them. Every kind runs through Engine.Run; what sets one kind apart is
// declared here, not coded in the engine.
type Saga struct {
	Name  string
	Steps []Step
	// Running and Done bracket a saga of the workspace's lifecycle
	// (create, delete): the status while its steps run, published when
	// the run starts, and the status event published after the last step.
	Running string
	Done    func(st *State) events.StatusChanged
	// Side marks a saga that runs beside the lifecycle of a ready
	// workspace, in the record's side slot (Record.Member): it publishes
	// no status event, and its failure is recorded as step.failed only,
	// the workspace's status left as it was. Membership changes are side
	// sagas; a credential rotation would be one too.
	Side bool
	// Settle, if set, changes the record once a side saga's last step is
	// done (the admins after a membership change).
	Settle func(r *Record, st *State)
	// Quiet drops the step.completed events of a saga that runs on a
	// timer (the drift sweep's reconcile, every workspace every few
	// minutes), which would bury the audit trail; its own events (what it
	// found) and its failures are published as any saga's.
	Quiet bool
	// RetryBudget, if set, bounds a step's in-place retries of transient
	// errors instead of the engine's MaxRetryElapsed: a saga that runs on
	// a timer gives up soon during an outage (the next run tries again)
	// rather than hold its slot for minutes.
	RetryBudget time.Duration
}

// State is what the steps of one run share: the workspace and the
// parameters of the command that started the saga.
type State struct {
	Workspace string
	// CommandID, CorrelationID and Actor are the command's that drives
	// the run.
	CommandID, CorrelationID, Actor string
	Params                          Params
	// StepStarted is when the current step first started, for a step
	// with MarkStart (zero otherwise); the same on every attempt, resume
	// and retry of that step.
	StepStarted time.Time
	// StepFresh is true on the first try of a MarkStart step whose start
	// this very run has just recorded: no earlier attempt can have sent
	// anything, so a resource found in place is not this step's. It is
	// false on every later try, resume and retry, when a call whose answer
	// was lost may have made it.
	StepFresh bool
	// Admins are the workspace's ws_admin holders as the record knew them
	// when the run started (see Record.Admins).
	Admins []string
}

// Params are the command parameters a saga keeps for its whole life,
// including resumes and retries.
type Params struct {
	Owner    string `json:"owner,omitempty"`
	Purge    bool   `json:"purge,omitempty"`
	Force    bool   `json:"force,omitempty"`     // a delete that abandoned a pending run
	Username string `json:"username,omitempty"`  // membership changes
	ClientID string `json:"client_id,omitempty"` // member_add of a client application
	// credentials_rotate: everyone's keys (All) or Username's, the old
	// ones kept working for Grace; Rotated lists whose were replaced.
	All       bool          `json:"all,omitempty"`
	Grace     time.Duration `json:"grace,omitempty"`
	Rotated   []string      `json:"rotated,omitempty"`
	RotatedAt time.Time     `json:"rotated_at,omitzero"`
	Role      string        `json:"role,omitempty"` // member_add
	// QuotaMB is the bucket's hard quota in MiB: the create's (nil: none)
	// or quota_set's (nil: remove it).
	QuotaMB *int64 `json:"quota_mb,omitempty"`
	// Drift is what a reconcile knows before it starts and what it found.
	Drift *Drift `json:"drift,omitempty"`
}

// Compensations returns the undo steps of steps, in reverse order,
// skipping steps without a Compensate; each keeps its step's name.
func Compensations(steps []Step) []Step {
	out := make([]Step, 0, len(steps))
	for i := len(steps) - 1; i >= 0; i-- {
		if steps[i].Compensate != nil {
			out = append(out, Step{Name: steps[i].Name, Do: steps[i].Compensate})
		}
	}
	return out
}
