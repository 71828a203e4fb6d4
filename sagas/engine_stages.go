package sagas

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/tracing"
)

// stages splits a saga's steps into what runs one after another: a step
// without a lane is a stage of its own; neighbouring steps with lanes make
// one stage whose lanes run side by side, each lane's steps in order.
func stages(steps []Step) [][][]Step {
	var out [][][]Step
	for i := 0; i < len(steps); {
		if steps[i].Lane == "" {
			out = append(out, [][]Step{{steps[i]}})
			i++
			continue
		}
		var order []string
		lanes := map[string][]Step{}
		for ; i < len(steps) && steps[i].Lane != ""; i++ {
			if _, ok := lanes[steps[i].Lane]; !ok {
				order = append(order, steps[i].Lane)
			}
			lanes[steps[i].Lane] = append(lanes[steps[i].Lane], steps[i])
		}
		stage := make([][]Step, 0, len(order))
		for _, l := range order {
			stage = append(stage, lanes[l])
		}
		out = append(out, stage)
	}
	return out
}

// laneStop is how a lane ended early: a step that failed (step set), or
// an error that ends the run without a verdict (step empty).
type laneStop struct {
	step string
	err  error
}

// runStage runs a stage's lanes side by side and waits for all of them.
// A lane that stops early keeps the others from starting new steps. The
// first lane to stop decides the run's outcome, as one step would; a
// panic in a lane (a crash, in tests) is raised again here.
func (h *handle) runStage(ctx context.Context, lanes [][]Step, st *State) error {
	stops := make([]*laneStop, len(lanes))
	if len(lanes) == 1 {
		stops[0] = h.runLane(ctx, lanes[0], st, nil)
	} else {
		var halt atomic.Bool
		panics := make([]any, len(lanes))
		var wg sync.WaitGroup
		for i, lane := range lanes {
			lst := *st // StepStarted is per step, so per lane
			wg.Go(func() {
				defer func() {
					if p := recover(); p != nil {
						panics[i] = p
						halt.Store(true)
					}
				}()
				stops[i] = h.runLane(ctx, lane, &lst, &halt)
			})
		}
		wg.Wait()
		for _, p := range panics {
			if p != nil {
				panic(p)
			}
		}
	}
	for _, stop := range stops {
		switch {
		case stop == nil:
		case stop.step != "" && !(ctx.Err() != nil && errors.Is(stop.err, ctx.Err())):
			return h.fail(ctx, stop.step, stop.err)
		case stop.step != "":
			return h.abort(ctx, ErrStopped)
		default:
			return h.abort(ctx, stop.err)
		}
	}
	return nil
}

// runLane runs a lane's unfinished steps in order until one stops it or
// halt (set by another lane that stopped) is seen between steps.
func (h *handle) runLane(ctx context.Context, lane []Step, st *State, halt *atomic.Bool) *laneStop {
	stop := func(ls *laneStop) *laneStop {
		if halt != nil {
			halt.Store(true)
		}
		return ls
	}
	for _, step := range lane {
		if h.isDone(step.Name) {
			continue
		}
		if halt != nil && halt.Load() {
			return nil
		}
		if err := h.checkpoint(ctx); err != nil {
			return stop(&laneStop{err: err})
		}
		started, fresh, err := h.markStart(ctx, step)
		if err != nil {
			return stop(&laneStop{err: err})
		}
		st.StepStarted, st.StepFresh = started, fresh
		if err := h.e.attempt(ctx, h.ws, h.s, step, st); err != nil {
			return stop(&laneStop{step: step.Name, err: err})
		}
		if err := h.completed(ctx, step, st); err != nil {
			return stop(&laneStop{err: err})
		}
	}
	return nil
}

// attempt runs a step until it succeeds or its retries end, and tells
// the observer how that went.
func (e *Engine) attempt(ctx context.Context, ws string, s Saga, step Step, st *State) error {
	ctx, span := tracing.Tracer().Start(ctx, s.Name+" "+step.Name,
		trace.WithAttributes(attribute.String("workspace", ws), attribute.String("saga", s.Name)))
	defer span.End()
	begin := time.Now()
	budget := e.cfg.MaxRetryElapsed
	if s.RetryBudget > 0 {
		budget = min(budget, s.RetryBudget)
	}
	err := e.retryFor(ctx, ws, step.Name, budget, func() error {
		err := e.do(ctx, step, st)
		st.StepFresh = false // a lost answer may hide what this try made
		return err
	})
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, "step failed")
	}
	if e.cfg.ObserveStep != nil {
		e.cfg.ObserveStep(s.Name, step.Name, time.Since(begin), err)
	}
	return err
}

// do runs one attempt of a step, detached from the run's cancellation
// but bounded by the step timeout.
func (e *Engine) do(ctx context.Context, step Step, st *State) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.StepTimeout)
	defer cancel()
	if err := step.Do(sctx, st); err != nil {
		return fmt.Errorf("%s: %w", step.Name, err)
	}
	return nil
}

// retry runs op until it succeeds, fails permanently, the retry budget
// is spent (exponential backoff with jitter) or ctx ends.
func (e *Engine) retry(ctx context.Context, ws, what string, op func() error) error {
	return e.retryFor(ctx, ws, what, e.cfg.MaxRetryElapsed, op)
}

// retryFor is retry with a budget of its own.
func (e *Engine) retryFor(ctx context.Context, ws, what string, budget time.Duration, op func() error) error {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(e.cfg.RetryInitial),
		backoff.WithMaxInterval(e.cfg.RetryMax),
		backoff.WithMaxElapsedTime(budget),
		backoff.WithRandomizationFactor(0.5),
	)
	slot, waiting := slotFrom(ctx), false
	return backoff.RetryNotify(func() error {
		if waiting { // the slot was given back for the wait (see Slot)
			if err := slot.Acquire(ctx); err != nil {
				return backoff.Permanent(err)
			}
			waiting = false
		}
		err := op()
		if err != nil && (IsPermanent(err) || errors.Is(err, ErrRecordChanged)) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		e.log.Warn("saga: transient error, retrying", zap.String("workspace", ws), zap.String("step", what),
			zap.Duration("in", next), zap.Error(err))
		if e.cfg.ObserveRetry != nil {
			e.cfg.ObserveRetry(ProviderOf(err))
		}
		if slot != nil {
			slot.Release()
			waiting = true
		}
	})
}
