package sagas

import (
	"context"
	"errors"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
)

// drive runs the saga's stages in order, then finishes the run. Each
// ending (finish, fail, abort) writes the record once, its lease released.
func (h *handle) drive(ctx context.Context) error {
	defer h.keepLease(ctx)()
	st := h.state()
	if err := h.begin(ctx, st); err != nil {
		return h.abort(ctx, err)
	}
	for _, stage := range stages(h.s.Steps) {
		if err := h.runStage(ctx, stage, st); err != nil {
			return err
		}
	}
	return h.finish(ctx, st)
}

// state is what the steps of this run share.
func (h *handle) state() *State {
	rec := h.snapshot()
	run := h.run(&rec)
	return &State{Workspace: h.ws, CommandID: run.CommandID, CorrelationID: run.CorrelationID, Actor: run.Actor, Params: run.Params, Admins: rec.admins()}
}

// snapshot returns the record as last saved; the lease renewal writes it
// meanwhile.
func (h *handle) snapshot() Record {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.rec
}

// begin announces the run: a lifecycle saga publishes its running
// status; every run re-publishes its last finished steps' events.
func (h *handle) begin(ctx context.Context, st *State) error {
	if !h.s.Side {
		rec := h.snapshot()
		start := &events.StatusChanged{Status: h.s.Running, Previous: rec.Previous, Owner: rec.Params.Owner}
		if err := h.publish(ctx, "status", h.s.Running, start); err != nil {
			return err
		}
	}
	return h.republishLast(ctx, st)
}

// finish ends a run whose steps are all done.
func (h *handle) finish(ctx context.Context, st *State) error {
	if h.s.Side {
		err := h.update(ctx, func(r *Record) {
			if h.s.Settle != nil {
				h.s.Settle(r, st)
			}
			r.MembersApplied = ended(r.MembersApplied, r.Member.CommandID)
			r.Member, r.Lease = nil, nil
		})
		if err != nil {
			return h.abort(ctx, err)
		}
		h.e.log.Info("saga: done", zap.String("workspace", h.ws), zap.String("saga", h.s.Name))
		return nil
	}
	done := h.s.Done(st)
	done.Previous = h.s.Running
	if err := h.publish(ctx, "status", done.Status, &done); err != nil {
		return h.abort(ctx, err)
	}
	if err := h.update(ctx, func(r *Record) { r.Status, r.Lease = done.Status, nil }); err != nil {
		return h.abort(ctx, err)
	}
	h.e.log.Info("saga: done", zap.String("workspace", h.ws), zap.String("saga", h.s.Name), zap.String("status", done.Status))
	return nil
}

// fail records a step's failure: a step.failed event, for a lifecycle
// saga a failed status event too, then the record, its lease released.
// A side saga's command is over (marked as ended); the workspace's
// status is left alone.
func (h *handle) fail(ctx context.Context, step string, cause error) error {
	msg := truncate(cause.Error(), 2000)
	retryable := !IsPermanent(cause)
	failed := &events.StepFailed{Saga: h.s.Name, Step: step, Error: msg, Retryable: retryable}
	if err := h.publish(ctx, step, "failed", failed); err != nil {
		return h.abort(ctx, err)
	}
	if !h.s.Side {
		status := &events.StatusChanged{Status: events.StatusFailed, Previous: h.s.Running, Owner: h.snapshot().Params.Owner,
			LastError: msg, FailedStep: step}
		if err := h.publish(ctx, "status", events.StatusFailed+"/"+step, status); err != nil {
			return h.abort(ctx, err)
		}
	}
	err := h.update(ctx, func(r *Record) {
		if h.s.Side {
			r.MembersApplied = ended(r.MembersApplied, r.Member.CommandID)
			r.Member, r.Lease = nil, nil
			return
		}
		r.Status, r.FailedStep, r.LastError, r.Retryable, r.Lease = events.StatusFailed, step, msg, retryable, nil
		if errors.Is(cause, ErrNotOurs) && r.Started != nil && r.Started.Step == step {
			// The marked step found someone else's resource and made
			// nothing: a retry starts afresh, so its first try refuses that
			// resource again instead of taking it for a lost attempt's.
			r.Started = nil
		}
	})
	if err != nil {
		return h.abort(ctx, err)
	}
	h.e.log.Warn("saga: failed", zap.String("workspace", h.ws), zap.String("saga", h.s.Name),
		zap.String("step", step), zap.Bool("retryable", retryable), zap.String("error", msg))
	return &FailedError{Saga: h.s.Name, Step: step, Retryable: retryable, Err: cause}
}

// abort ends a run without a verdict: the record keeps its progress and
// the lease is released (best effort) so the command can resume at once
// wherever it is delivered next.
func (h *handle) abort(ctx context.Context, err error) error {
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		err = ErrStopped
	}
	if !errors.Is(err, ErrBusy) {
		if rerr := h.update(ctx, func(r *Record) { r.Lease = nil }); rerr != nil {
			h.e.log.Warn("saga: releasing lease failed", zap.String("workspace", h.ws), zap.Error(rerr))
		}
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[:n-3]
	for !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s + "..."
}
