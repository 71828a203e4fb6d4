package sagas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// CommandHandler decides what a command means for its workspace's saga
// record, then starts, resumes or skips a saga, which the Engine runs.
// One workspace's commands must reach it one at a time (the worker's
// per-workspace queue); the record's compare-and-set and lease keep two
// workers apart.
type CommandHandler struct {
	engine   *Engine
	progress ProgressStore
	sagas    *Provisioner
	log      *zap.Logger
}

// NewCommandHandler wires the decision table to an engine and the sagas.
func NewCommandHandler(engine *Engine, progress ProgressStore, sagas *Provisioner, log *zap.Logger) *CommandHandler {
	return &CommandHandler{engine: engine, progress: progress, sagas: sagas, log: log}
}

// Handle applies one schema-valid command. It returns nil (done, or
// nothing to do), *RejectedError, *FailedError, ErrBusy, ErrStopped, or
// another error (infrastructure: try the command again later).
func (c *CommandHandler) Handle(ctx context.Context, env events.Envelope) error {
	for range 3 {
		err := c.handle(ctx, env)
		if !errors.Is(err, ErrRecordChanged) {
			return err
		}
	}
	return fmt.Errorf("saga record of %s keeps changing: %w", env.Subject, ErrBusy)
}

func (c *CommandHandler) handle(ctx context.Context, env events.Envelope) error {
	payload, err := env.DecodeData()
	if err != nil {
		return Rejectf("%v", err)
	}
	rec, rev, err := c.progress.Load(ctx, env.Subject)
	if err != nil {
		return err
	}
	if d, ok := payload.(*events.Delete); ok && d.Force {
		return c.forceDelete(ctx, env, rec, rev)
	}
	rec, rev, done, err := c.finishPending(ctx, env, rec, rev)
	if done || err != nil {
		return err
	}
	switch cmd := payload.(type) {
	case *events.Create:
		return c.create(ctx, env, cmd, rec, rev)
	case *events.Delete:
		return c.delete(ctx, env, cmd, rec, rev)
	case *events.Retry:
		return c.retry(ctx, env, rec, rev)
	case *events.MemberAdd:
		return c.side(ctx, env, c.sagas.MemberAdd(), Params{Username: cmd.Username, ClientID: cmd.ClientID, Role: cmd.Role}, rec, rev)
	case *events.CredentialsRotate:
		return c.side(ctx, env, c.sagas.Rotate(), Params{Username: cmd.Username, All: cmd.All,
			Grace: time.Duration(cmd.GraceSeconds) * time.Second}, rec, rev)
	case *events.CredentialsMigrate:
		if rec.Layout >= LayoutPerMember {
			c.skip(env, rec, "keys are per member already")
			return nil
		}
		return c.side(ctx, env, c.sagas.Migrate(), Params{}, rec, rev)
	case *events.QuotaSet:
		return c.side(ctx, env, c.sagas.SetQuota(), Params{QuotaMB: cmd.QuotaMB}, rec, rev)
	case *events.MemberRemove:
		return c.side(ctx, env, c.sagas.MemberRemove(), Params{Username: cmd.Username}, rec, rev)
	case *events.Reconcile:
		return c.side(ctx, env, c.sagas.Reconcile(), Params{Drift: driftBefore(rec)}, rec, rev)
	default:
		return Rejectf("%s is not handled by this worker", env.Type)
	}
}

// finishPending completes a run left mid-way (crash, stop, another
// worker) before anything that came after it: the workspace's saga, then
// a side saga. done is true when env itself was that run (its outcome is
// err); otherwise the fresh record is returned. A pending run that fails
// does not stop env: that failure is recorded already.
func (c *CommandHandler) finishPending(ctx context.Context, env events.Envelope, rec Record, rev uint64) (Record, uint64, bool, error) {
	for range 2 {
		var run *Run
		switch {
		case rec.Running():
			run = &rec.Run
		case rec.Member != nil:
			run = rec.Member
		default:
			return rec, rev, false, nil
		}
		err := c.resume(ctx, env.Subject, *run, rec, rev)
		var failed *FailedError
		if run.CommandID == env.ID || (err != nil && !errors.As(err, &failed)) {
			return rec, rev, true, err
		}
		if rec, rev, err = c.progress.Load(ctx, env.Subject); err != nil {
			return rec, rev, true, err
		}
	}
	return rec, rev, false, nil
}

// resume takes over run, left mid-way in rec, unless another live worker
// holds it.
func (c *CommandHandler) resume(ctx context.Context, ws string, run Run, rec Record, rev uint64) error {
	s, ok := c.sagas.ByName(run.Saga)
	if !ok {
		return Rejectf("workspace %s: unknown saga %q in its record", ws, run.Saga)
	}
	return c.engine.Run(ctx, s, ws, rec, rev)
}

func (c *CommandHandler) create(ctx context.Context, env events.Envelope, cmd *events.Create, rec Record, rev uint64) error {
	want, err := events.NameFor(cmd.PreferredName)
	if err != nil || want != env.Subject {
		return Rejectf("workspace %s is not the name of preferred_name %q (%s)", env.Subject, cmd.PreferredName, want)
	}
	switch {
	case rec.CreatedBy == env.ID:
		c.skip(env, rec, "this create was applied already")
		return nil
	case rev == 0:
		return c.start(ctx, env, c.sagas.Create(), Params{Owner: cmd.DefaultOwner, QuotaMB: cmd.QuotaMB}, rec, rev)
	case rec.Status == events.StatusDeleted:
		if err := c.notHeld(ctx, env.Subject); err != nil {
			return err
		}
		return c.start(ctx, env, c.sagas.Create(), Params{Owner: cmd.DefaultOwner, QuotaMB: cmd.QuotaMB}, rec, rev)
	case rec.Saga == SagaCreate:
		c.skip(env, rec, "workspace exists already")
		return nil
	default:
		return Rejectf("workspace %s is being deleted (%s at step %s); finish the delete first", env.Subject, rec.Status, rec.FailedStep)
	}
}

// notHeld refuses a create of a name still held after its deletion: the
// API says so before publishing, a command sent straight to NATS learns
// it here.
func (c *CommandHandler) notHeld(ctx context.Context, ws string) error {
	until, err := c.sagas.d.Names.HeldUntil(ctx, ws)
	switch {
	case err != nil:
		return fmt.Errorf("is the name %s held: %w", ws, err)
	case !until.IsZero():
		return Rejectf("the name %s belonged to a deleted workspace and is held until %s; a platform admin may release it early",
			ws, until.UTC().Format(time.RFC3339))
	}
	return nil
}

func (c *CommandHandler) delete(ctx context.Context, env events.Envelope, cmd *events.Delete, rec Record, rev uint64) error {
	switch {
	case rev == 0:
		return Rejectf("workspace %s does not exist", env.Subject)
	case rec.Status == events.StatusDeleted, rec.CommandID == env.ID:
		c.skip(env, rec, "already deleted or already handled")
		return nil
	}
	// From a created workspace (ready or failed), or a delete that failed:
	// a new delete starts over with its own parameters (e.g. purge).
	return c.start(ctx, env, c.sagas.Delete(), Params{Owner: rec.Params.Owner, Purge: cmd.Purge}, rec, rev)
}

// forceDelete starts a delete from any state. A run left pending (a create
// stuck provisioning, a side saga, an earlier delete) is abandoned, not
// finished first: every step of the delete is idempotent and removes only
// what is marked ours, so whatever that run made goes with the rest, and
// what is not ours stays. The bucket goes with its objects.
func (c *CommandHandler) forceDelete(ctx context.Context, env events.Envelope, rec Record, rev uint64) error {
	switch {
	case rev == 0:
		return Rejectf("workspace %s does not exist", env.Subject)
	case rec.Status == events.StatusDeleted:
		c.skip(env, rec, "already deleted")
		return nil
	case rec.CommandID == env.ID && rec.Running():
		return c.resume(ctx, env.Subject, rec.Run, rec, rev) // this very delete, cut short
	case rec.CommandID == env.ID:
		c.skip(env, rec, "this delete was handled already")
		return nil
	}
	return c.start(ctx, env, c.sagas.Delete(), Params{Owner: rec.Params.Owner, Purge: true, Force: true}, rec, rev)
}

func (c *CommandHandler) retry(ctx context.Context, env events.Envelope, rec Record, rev uint64) error {
	switch {
	case rev == 0:
		return Rejectf("workspace %s does not exist", env.Subject)
	case rec.Status != events.StatusFailed || rec.CommandID == env.ID:
		c.skip(env, rec, "nothing failed, nothing to retry")
		return nil
	}
	s, ok := c.sagas.ByName(rec.Saga)
	if !ok {
		return Rejectf("workspace %s: unknown saga %q in its record", env.Subject, rec.Saga)
	}
	// Same saga and parameters, resumed at the failed step; events carry
	// the retry command's ids.
	next := rec
	next.CommandID, next.CorrelationID, next.Actor = env.ID, env.CorrelationID, env.Actor
	next.Status, next.Previous = s.Running, rec.Status
	next.FailedStep, next.LastError, next.Retryable = "", "", false
	return c.engine.Run(ctx, s, env.Subject, next, rev)
}

// start replaces the record at rev (0: none) with a new run of the
// lifecycle saga s.
func (c *CommandHandler) start(ctx context.Context, env events.Envelope, s Saga, p Params, prev Record, rev uint64) error {
	// The lease is kept so the engine still refuses a run another live
	// worker holds (a forced delete replaces a record that may have one).
	rec := Record{Run: NewRun(s, env, p), Status: s.Running, Previous: prev.Status,
		CreatedBy: prev.CreatedBy, MembersApplied: prev.MembersApplied, Layout: prev.Layout, Lease: prev.Lease}
	if s.Name == SagaCreate {
		rec.CreatedBy, rec.Layout = env.ID, LayoutPerMember
		rec.Quota = &RecordedQuota{MB: p.QuotaMB}
	}
	return c.engine.Run(ctx, s, env.Subject, rec, rev)
}

// side starts the side saga s (Saga.Side) of a ready workspace: a
// membership change, or any saga that runs like one.
func (c *CommandHandler) side(ctx context.Context, env events.Envelope, s Saga, p Params, rec Record, rev uint64) error {
	switch {
	case slices.Contains(rec.MembersApplied, env.ID):
		c.skip(env, rec, "this command was applied already")
		return nil
	case rev == 0:
		return Rejectf("workspace %s does not exist", env.Subject)
	case rec.Status != events.StatusReady && !(s.Name == SagaReconcile && rec.Status == events.StatusDegraded):
		return Rejectf("workspace %s is %s (%s saga): %s runs only while it is ready",
			env.Subject, rec.Status, rec.Saga, s.Name)
	}
	run := NewRun(s, env, p)
	rec.Member = &run
	return c.engine.Run(ctx, s, env.Subject, rec, rev)
}

func (c *CommandHandler) skip(env events.Envelope, rec Record, why string) {
	c.log.Info("saga: command changes nothing", zap.String("workspace", env.Subject), zap.String("type", env.Type),
		zap.String("command_id", env.ID), zap.String("status", rec.Status), zap.String("reason", why))
}
