package sagas

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// RejectedError is a command that is never acted on: it makes no sense
// for the workspace's state (or is malformed). Reason says why, for the
// operator who finds it among the dead letters.
type RejectedError struct{ Reason string }

func (e *RejectedError) Error() string { return "command rejected: " + e.Reason }

// Rejectf returns a *RejectedError.
func Rejectf(format string, args ...any) error {
	return &RejectedError{Reason: fmt.Sprintf(format, args...)}
}

// Coordinator decides what a command means for its workspace's saga
// record, then starts, resumes or skips a saga. One workspace's commands
// must reach it one at a time (the worker's per-workspace queue); the
// record's compare-and-set and lease keep two workers apart.
type Coordinator struct {
	runner   *Runner
	progress *Progress
	sagas    *Provisioner
	log      *zap.Logger
}

// NewCoordinator wires the decision table to a runner and the sagas.
func NewCoordinator(runner *Runner, progress *Progress, sagas *Provisioner, log *zap.Logger) *Coordinator {
	return &Coordinator{runner: runner, progress: progress, sagas: sagas, log: log}
}

// Handle applies one schema-valid command. It returns nil (done, or
// nothing to do), *RejectedError, *FailedError, ErrBusy, ErrStopped, or
// another error (infrastructure: try the command again later).
func (c *Coordinator) Handle(ctx context.Context, env events.Envelope) error {
	for range 3 {
		err := c.handle(ctx, env)
		if !errors.Is(err, errConflict) {
			return err
		}
	}
	return fmt.Errorf("saga record of %s keeps changing: %w", env.Subject, ErrBusy)
}

func (c *Coordinator) handle(ctx context.Context, env events.Envelope) error {
	payload, err := env.DecodeData()
	if err != nil {
		return Rejectf("%v", err)
	}
	ws := env.Subject
	rec, rev, err := c.progress.Load(ctx, ws)
	if err != nil {
		return err
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
		return c.member(ctx, env, Params{Username: cmd.Username, Role: cmd.Role}, c.sagas.MemberAdd(), rec, rev)
	case *events.MemberRemove:
		return c.member(ctx, env, Params{Username: cmd.Username}, c.sagas.MemberRemove(), rec, rev)
	default:
		return Rejectf("%s is not handled by this worker", env.Type)
	}
}

// finishPending completes a run left mid-way (crash, stop, another
// worker) before anything that came after it: the workspace's saga, then
// a membership change. done is true when env itself was that run (its
// outcome is err); otherwise the fresh record is returned. A pending run
// that fails does not stop env: that failure is recorded already.
func (c *Coordinator) finishPending(ctx context.Context, env events.Envelope, rec Record, rev uint64) (Record, uint64, bool, error) {
	for range 2 {
		var err error
		var id string
		switch {
		case rec.Running():
			id, err = rec.CommandID, c.resume(ctx, env.Subject, rec, rev)
		case rec.Member != nil:
			id, err = rec.Member.CommandID, c.resumeMember(ctx, env.Subject, rec, rev)
		default:
			return rec, rev, false, nil
		}
		var failed *FailedError
		if id == env.ID || (err != nil && !errors.As(err, &failed)) {
			return rec, rev, true, err
		}
		if rec, rev, err = c.progress.Load(ctx, env.Subject); err != nil {
			return rec, rev, true, err
		}
	}
	return rec, rev, false, nil
}

func (c *Coordinator) create(ctx context.Context, env events.Envelope, cmd *events.Create, rec Record, rev uint64) error {
	want, err := events.NameFor(cmd.PreferredName)
	if err != nil || want != env.Subject {
		return Rejectf("workspace %s is not the name of preferred_name %q (%s)", env.Subject, cmd.PreferredName, want)
	}
	switch {
	case rec.CreatedBy == env.ID:
		c.skip(env, rec, "this create was applied already")
		return nil
	case rev == 0 || rec.Status == events.StatusDeleted:
		return c.start(ctx, env, c.sagas.Create(), Params{Owner: cmd.DefaultOwner}, rec, rev)
	case rec.Saga == SagaCreate:
		c.skip(env, rec, "workspace exists already")
		return nil
	default:
		return Rejectf("workspace %s is being deleted (%s at step %s); finish the delete first", env.Subject, rec.Status, rec.FailedStep)
	}
}

func (c *Coordinator) delete(ctx context.Context, env events.Envelope, cmd *events.Delete, rec Record, rev uint64) error {
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

func (c *Coordinator) retry(ctx context.Context, env events.Envelope, rec Record, rev uint64) error {
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
	next.Lease = c.runner.lease()
	newRev, err := c.progress.Save(ctx, env.Subject, next, rev)
	if err != nil {
		return err
	}
	return c.runner.run(ctx, s, env.Subject, next, newRev)
}

// start replaces the record at rev (0: none) with a new run of s.
func (c *Coordinator) start(ctx context.Context, env events.Envelope, s Saga, p Params, prev Record, rev uint64) error {
	rec := Record{
		Saga: s.Name, CommandID: env.ID, CorrelationID: env.CorrelationID, Actor: env.Actor,
		Status: s.Running, Previous: prev.Status, StepsDone: []string{}, Params: p, Lease: c.runner.lease(),
		CreatedBy: prev.CreatedBy, MembersApplied: prev.MembersApplied,
	}
	if s.Name == SagaCreate {
		rec.CreatedBy = env.ID
	}
	newRev, err := c.progress.Save(ctx, env.Subject, rec, rev)
	if err != nil {
		return err
	}
	c.log.Info("saga: started", zap.String("workspace", env.Subject), zap.String("saga", s.Name),
		zap.String("command_id", env.ID), zap.String("actor", env.Actor))
	return c.runner.run(ctx, s, env.Subject, rec, newRev)
}

// resume takes over a run left mid-way, unless another live worker holds it.
func (c *Coordinator) resume(ctx context.Context, ws string, rec Record, rev uint64) error {
	if rec.LeasedByOther(c.runner.cfg.WorkerID, time.Now()) {
		return fmt.Errorf("%s held by %s: %w", ws, rec.Lease.WorkerID, ErrBusy)
	}
	s, ok := c.sagas.ByName(rec.Saga)
	if !ok {
		return Rejectf("workspace %s: unknown saga %q in its record", ws, rec.Saga)
	}
	rec.Lease = c.runner.lease()
	newRev, err := c.progress.Save(ctx, ws, rec, rev)
	if err != nil {
		return err
	}
	c.log.Info("saga: resuming", zap.String("workspace", ws), zap.String("saga", rec.Saga),
		zap.Strings("steps_done", rec.StepsDone))
	return c.runner.run(ctx, s, ws, rec, newRev)
}

func (c *Coordinator) skip(env events.Envelope, rec Record, why string) {
	c.log.Info("saga: command changes nothing", zap.String("workspace", env.Subject), zap.String("type", env.Type),
		zap.String("command_id", env.ID), zap.String("status", rec.Status), zap.String("reason", why))
}
