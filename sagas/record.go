package sagas

import (
	"slices"
	"time"

	"github.com/eo-workspaces/provisioner/events"
)

// Record is a workspace's saga progress, one per workspace in the
// ProgressStore, always written with compare-and-set on its revision.
//
// It has two run slots. The embedded Run (its fields top-level in JSON)
// is the workspace's create or delete saga. A side saga (Saga.Side: a
// membership change) runs beside it, in Member, inside the same entry
// rather than under a key of its own: one entry means one lease and one
// compare-and-set, so a side saga and a create, delete or retry of the
// same workspace can never run at once, even on different workers; and
// the fields the command handler decides on (Saga, Status, CreatedBy)
// are never touched by a side saga, so a duplicate create after one is
// still a no-op and a delete after one still starts from a ready
// workspace.
type Record struct {
	Run
	Status     string `json:"status"`
	Previous   string `json:"previous,omitempty"` // status before this run
	FailedStep string `json:"failed_step,omitempty"`
	LastError  string `json:"last_error,omitempty"`
	Retryable  bool   `json:"retryable,omitempty"`
	// CreatedBy is the id of the create command that made this
	// incarnation of the workspace, kept through its deletion, so a stale
	// redelivery of that create does not bring a deleted workspace back.
	CreatedBy string `json:"created_by,omitempty"`
	// Member is the side saga in progress, nil when none is. (The name
	// predates other side sagas; it stays for the stored records.)
	Member *Run `json:"member,omitempty"`
	// Admins are the ws_admin holders this system granted, as far as
	// its own sagas know (nil: only the owner), for the last-admin rule.
	Admins []string `json:"admins,omitempty"`
	// Layout is how the workspace's storage access is made (LayoutShared,
	// LayoutPerMember), so an upgrade knows what to migrate.
	Layout int `json:"layout,omitempty"`
	// MembersApplied holds the ids of the latest side-saga commands that
	// ended (done or failed), oldest first, so a redelivered one is not
	// applied again after later changes.
	MembersApplied []string `json:"members_applied,omitempty"`
	// Quota is the bucket's hard quota as this system last set it, which a
	// reconcile restores; nil when unknown (a record older than it).
	Quota     *RecordedQuota `json:"quota,omitempty"`
	Lease     *Lease         `json:"lease,omitempty"`
	UpdatedAt time.Time      `json:"updated_at"`
}

// Run is one saga run in a record: which saga, the command that drives
// it, its parameters and how far it got. Its steps resume after a crash;
// each is idempotent, so a repeated step is harmless.
type Run struct {
	Saga          string   `json:"saga"`
	CommandID     string   `json:"command_id"`
	CorrelationID string   `json:"correlation_id"`
	Actor         string   `json:"actor"`
	StepsDone     []string `json:"steps_done"`
	Params        Params   `json:"params"`
	// Started is the step of this run that asks for its start to be
	// recorded (Step.MarkStart) and has not completed yet.
	Started *StepStart `json:"started,omitempty"`
}

// NewRun is the run of saga s that the command env starts.
func NewRun(s Saga, env events.Envelope, p Params) Run {
	return Run{Saga: s.Name, CommandID: env.ID, CorrelationID: env.CorrelationID, Actor: env.Actor,
		StepsDone: []string{}, Params: p}
}

// meta returns the envelope metadata of an event caused by the command
// that drives this run.
func (r Run) meta() events.Meta {
	return events.Meta{Actor: r.Actor, CorrelationID: r.CorrelationID, CausationID: r.CommandID}
}

// clone copies r deep enough that changing the copy leaves r alone.
func (r Run) clone() Run {
	r.StepsDone = slices.Clone(r.StepsDone)
	if r.Started != nil {
		s := *r.Started
		r.Started = &s
	}
	return r
}

// maxApplied bounds Record.MembersApplied: redeliveries come soon after
// the original, within far fewer commands than this.
const maxApplied = 64

// ended records that the side-saga command id is over, keeping the
// latest maxApplied ids.
func ended(applied []string, id string) []string {
	out := append(slices.Clone(applied), id)
	if len(out) > maxApplied {
		out = out[len(out)-maxApplied:]
	}
	return out
}

// admins returns the ws_admin holders the record knows of.
func (r Record) admins() []string {
	if r.Admins == nil && r.Params.Owner != "" {
		return []string{r.Params.Owner}
	}
	return slices.Clone(r.Admins)
}

// RecordedQuota is a bucket's hard quota in MiB; MB nil: none.
type RecordedQuota struct {
	MB *int64 `json:"mb"`
}

// Lease says which worker drives the saga, until when; renewed while it
// runs, cleared when the run ends.
type Lease struct {
	WorkerID string    `json:"worker_id"`
	Until    time.Time `json:"until"`
}

// StepStart is when a step first started, saved before its first attempt.
type StepStart struct {
	Step string    `json:"step"`
	At   time.Time `json:"at"`
}

// Running reports whether the saga was left mid-way (a run is going on,
// or a worker stopped or crashed during one).
func (r Record) Running() bool {
	return r.Status == events.StatusProvisioning || r.Status == events.StatusDeleting
}

// LeasedByOther reports whether another worker holds a lease that has
// not expired. A worker with our id is ourselves before a restart.
func (r Record) LeasedByOther(workerID string, now time.Time) bool {
	return r.Lease != nil && r.Lease.WorkerID != workerID && now.Before(r.Lease.Until)
}
