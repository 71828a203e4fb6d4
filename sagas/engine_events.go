package sagas

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/eo-workspaces/provisioner/events"
)

// EventID is the deterministic id of the event a command's run publishes
// for one step and outcome, so a repeated step re-publishes a duplicate.
func EventID(commandID, saga, step, outcome string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(events.DefaultSource+"/"+commandID+"/"+saga+"/"+step+"/"+outcome)).String()
}

func (h *handle) publish(ctx context.Context, step, outcome string, p events.Payload) error {
	env, err := h.envelope(step, outcome, p)
	if err != nil {
		return err
	}
	return h.send(ctx, env)
}

// envelope wraps p as the event this run publishes for one step and
// outcome, with its deterministic id; the run's command is its cause.
func (h *handle) envelope(step, outcome string, p events.Payload) (events.Envelope, error) {
	h.mu.Lock()
	run := h.run(&h.rec)
	meta := run.meta()
	meta.ID = EventID(meta.CausationID, run.Saga, step, outcome)
	h.mu.Unlock()
	return events.New(h.ws, p, meta)
}

// busCallTimeout bounds one attempt of a publish or a progress save. A
// reply lost while NATS restarts (its server gone, or its answer dropped
// on the way) would otherwise hold the run until the step timeout; the
// attempt is repeated instead, which is safe: a publish carries its id,
// which the stream de-duplicates, and a save is a compare-and-set.
const busCallTimeout = 5 * time.Second

// send publishes envelopes in order, retrying transient failures.
func (h *handle) send(ctx context.Context, envs ...events.Envelope) error {
	ctx, cancel := h.detached(ctx)
	defer cancel()
	for _, env := range envs {
		err := h.e.retry(ctx, h.ws, "publish "+env.Type, func() error {
			actx, cancel := context.WithTimeout(ctx, busCallTimeout)
			defer cancel()
			_, err := h.e.pub.Publish(actx, env)
			return FromProvider(ProviderNATS, err)
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// completed publishes a finished step's events and saves its progress.
func (h *handle) completed(ctx context.Context, step Step, st *State) error {
	envs, err := h.stepEvents(step, st)
	if err != nil {
		return err
	}
	// The events and the progress go out together, one round trip instead
	// of two, and both must land before the next step. Should a crash keep
	// the progress but lose the events, begin re-publishes the last
	// finished step's events when the run resumes.
	var g errgroup.Group
	g.Go(func() error { return h.send(ctx, envs...) })
	g.Go(func() error {
		return h.update(ctx, func(r *Record) {
			run := h.run(r)
			run.StepsDone = append(run.StepsDone, step.Name)
			// what a step learned (a client's service-account user) is
			// kept for the steps after it, on resume too
			run.Params = st.Params
			if run.Started != nil && run.Started.Step == step.Name {
				run.Started = nil
			}
		})
	})
	if err := g.Wait(); err != nil {
		return err
	}
	h.e.log.Info("saga: step completed", zap.String("workspace", h.ws), zap.String("saga", h.s.Name), zap.String("step", step.Name))
	return nil
}

// stepEvents are the events a finished step publishes: step.completed
// (unless the saga is Quiet), then the step's own events if it has any.
func (h *handle) stepEvents(step Step, st *State) ([]events.Envelope, error) {
	var envs []events.Envelope
	if !h.s.Quiet {
		done, err := h.envelope(step.Name, "completed", &events.StepCompleted{Saga: h.s.Name, Step: step.Name})
		if err != nil {
			return nil, err
		}
		envs = append(envs, done)
	}
	if step.Event != nil {
		ev, err := h.envelope(step.Name, "event", step.Event(st))
		if err != nil {
			return nil, err
		}
		envs = append(envs, ev)
	}
	if step.Events != nil {
		for i, p := range step.Events(st) {
			ev, err := h.envelope(step.Name, fmt.Sprintf("event/%d", i), p)
			if err != nil {
				return nil, err
			}
			envs = append(envs, ev)
		}
	}
	return envs, nil
}

// republishLast re-sends the events of the last finished step of each
// lane (steps without a lane count as one lane), in case a crash kept
// their progress but lost their events; when they had landed, the stream
// drops them as duplicates of their ids.
func (h *handle) republishLast(ctx context.Context, st *State) error {
	last := map[string]Step{}
	var lanes []string
	for _, step := range h.s.Steps {
		if !h.isDone(step.Name) {
			continue
		}
		if _, seen := last[step.Lane]; !seen {
			lanes = append(lanes, step.Lane)
		}
		last[step.Lane] = step
	}
	for _, lane := range lanes {
		envs, err := h.stepEvents(last[lane], st)
		if err != nil {
			return err
		}
		if err := h.send(ctx, envs...); err != nil {
			return err
		}
	}
	return nil
}
