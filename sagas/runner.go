package sagas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/cenkalti/backoff/v4"
	"github.com/google/uuid"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/eo-workspaces/provisioner/events"
)

// Outcomes of a run besides success. The worker maps them to a message's
// fate in one place.
var (
	// ErrBusy: another live worker holds the workspace's lease (or took
	// it from us); try the command again later.
	ErrBusy = errors.New("workspace is leased by another worker")
	// ErrStopped: the context ended, so the run stopped at a step boundary
	// and released its lease; the record resumes it later.
	ErrStopped = errors.New("stopped at a step boundary")
)

// FailedError is a run that ended in status failed: the failure is
// recorded and published, nothing is left to do for the command.
type FailedError struct {
	Saga, Step string
	Retryable  bool // transient errors outlasted the retry budget
	Err        error
}

func (e *FailedError) Error() string {
	return fmt.Sprintf("%s saga failed at step %s: %v", e.Saga, e.Step, e.Err)
}
func (e *FailedError) Unwrap() error { return e.Err }

// EventPublisher publishes envelopes; *events.Publisher is one.
type EventPublisher interface {
	Publish(ctx context.Context, env events.Envelope) (events.Published, error)
}

// RunnerConfig tunes retries, leases and step time limits.
type RunnerConfig struct {
	WorkerID string
	// LeaseTTL is how long a lease holds without renewal; renewed every
	// third of it while a run goes on.
	LeaseTTL time.Duration
	// MaxRetryElapsed bounds the in-place retries of a transient error
	// before the saga goes failed (retryable by a retry command).
	MaxRetryElapsed time.Duration
	RetryInitial    time.Duration // first backoff interval
	RetryMax        time.Duration // longest backoff interval
	// StepTimeout bounds one attempt of a step. Steps do not see the run's
	// cancellation (a provider call is not cut in half), so this also
	// bounds how long a stop waits for the step in flight.
	StepTimeout time.Duration
	// ObserveStep, if set, learns how long each step took, retries
	// included, and how it ended (nil: done); for metrics.
	ObserveStep func(saga, step string, took time.Duration, err error)
}

// WithDefaults fills the zero fields.
func (c RunnerConfig) WithDefaults() RunnerConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.LeaseTTL, 30*time.Second)
	def(&c.MaxRetryElapsed, 5*time.Minute)
	def(&c.RetryInitial, 250*time.Millisecond)
	def(&c.RetryMax, 15*time.Second)
	def(&c.StepTimeout, time.Minute)
	return c
}

// Validate names the first field that cannot work.
func (c RunnerConfig) Validate() error {
	switch {
	case c.WorkerID == "":
		return errors.New("worker id: required")
	case c.LeaseTTL < 100*time.Millisecond:
		return fmt.Errorf("lease ttl: %s is too short", c.LeaseTTL)
	case c.RetryInitial <= 0 || c.RetryMax < c.RetryInitial:
		return fmt.Errorf("retry intervals: initial %s, max %s", c.RetryInitial, c.RetryMax)
	case c.MaxRetryElapsed <= 0:
		return fmt.Errorf("max retry elapsed: %s must be positive", c.MaxRetryElapsed)
	case c.StepTimeout <= 0:
		return fmt.Errorf("step timeout: %s must be positive", c.StepTimeout)
	}
	return nil
}

// Runner executes sagas step by step, persisting progress after each.
type Runner struct {
	cfg      RunnerConfig
	progress *Progress
	pub      EventPublisher
	log      *zap.Logger
}

// NewRunner checks cfg (after defaults) and returns a runner.
func NewRunner(cfg RunnerConfig, progress *Progress, pub EventPublisher, log *zap.Logger) (*Runner, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("saga runner: %w", err)
	}
	if progress == nil || pub == nil || log == nil {
		return nil, errors.New("saga runner: progress, publisher and logger are required")
	}
	return &Runner{cfg: cfg, progress: progress, pub: pub, log: log}, nil
}

// lease returns a fresh lease of this worker.
func (r *Runner) lease() *Lease {
	return &Lease{WorkerID: r.cfg.WorkerID, Until: time.Now().Add(r.cfg.LeaseTTL)}
}

// run drives s for ws from rec, which the caller saved at rev holding our
// lease. Every step's event is published before its progress is saved:
// a crash in between repeats the (idempotent) step and re-publishes an
// event with the same id, which the stream drops; the other order could
// lose the event. Returns nil, *FailedError, ErrStopped, ErrBusy or an
// infrastructure error.
func (r *Runner) run(ctx context.Context, s Saga, ws string, rec Record, rev uint64) error {
	h := &handle{r: r, ws: ws, rec: rec, rev: rev}
	defer h.keepLease(ctx)()
	st := &State{Workspace: ws, Params: rec.Params}
	start := &events.StatusChanged{Status: s.Running, Previous: rec.Previous, Owner: rec.Params.Owner}
	if err := h.publish(ctx, "status", s.Running, start); err != nil {
		return h.abort(ctx, err)
	}
	if err := h.republishLast(ctx, s, st); err != nil {
		return h.abort(ctx, err)
	}
	for _, stage := range stages(s.Steps) {
		if err := h.runStage(ctx, s, stage, st); err != nil {
			return err
		}
	}
	return h.finish(ctx, s, st)
}

// do runs one attempt of a step, detached from the run's cancellation
// but bounded by the step timeout.
func (r *Runner) do(ctx context.Context, step Step, st *State) error {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.cfg.StepTimeout)
	defer cancel()
	if err := step.Do(sctx, st); err != nil {
		return fmt.Errorf("%s: %w", step.Name, err)
	}
	return nil
}

// retry runs op until it succeeds, fails permanently, the retry budget
// is spent (exponential backoff with jitter) or ctx ends.
func (r *Runner) retry(ctx context.Context, ws, what string, op func() error) error {
	b := backoff.NewExponentialBackOff(
		backoff.WithInitialInterval(r.cfg.RetryInitial),
		backoff.WithMaxInterval(r.cfg.RetryMax),
		backoff.WithMaxElapsedTime(r.cfg.MaxRetryElapsed),
		backoff.WithRandomizationFactor(0.5),
	)
	return backoff.RetryNotify(func() error {
		err := op()
		if err != nil && (IsPermanent(err) || errors.Is(err, errConflict)) {
			return backoff.Permanent(err)
		}
		return err
	}, backoff.WithContext(b, ctx), func(err error, next time.Duration) {
		r.log.Warn("saga: transient error, retrying", zap.String("workspace", ws), zap.String("step", what),
			zap.Duration("in", next), zap.Error(err))
	})
}

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
func (h *handle) runStage(ctx context.Context, s Saga, lanes [][]Step, st *State) error {
	stops := make([]*laneStop, len(lanes))
	if len(lanes) == 1 {
		stops[0] = h.runLane(ctx, s, lanes[0], st, nil)
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
				stops[i] = h.runLane(ctx, s, lane, &lst, &halt)
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
			return h.fail(ctx, s, stop.step, stop.err)
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
func (h *handle) runLane(ctx context.Context, s Saga, lane []Step, st *State, halt *atomic.Bool) *laneStop {
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
		started, err := h.markStart(ctx, step)
		if err != nil {
			return stop(&laneStop{err: err})
		}
		st.StepStarted = started
		if err := h.r.attempt(ctx, h.ws, s, step, st); err != nil {
			return stop(&laneStop{step: step.Name, err: err})
		}
		if err := h.completed(ctx, s, step, st); err != nil {
			return stop(&laneStop{err: err})
		}
	}
	return nil
}

// isDone reports whether the record has the step as finished.
func (h *handle) isDone(step string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.rec.StepsDone, step)
}

// attempt runs a step until it succeeds or its retries end, and tells
// the observer how that went.
func (r *Runner) attempt(ctx context.Context, ws string, s Saga, step Step, st *State) error {
	begin := time.Now()
	err := r.retry(ctx, ws, step.Name, func() error { return r.do(ctx, step, st) })
	if r.cfg.ObserveStep != nil {
		r.cfg.ObserveStep(s.Name, step.Name, time.Since(begin), err)
	}
	return err
}

// EventID is the deterministic id of the event a command's run publishes
// for one step and outcome, so a repeated step re-publishes a duplicate.
func EventID(commandID, saga, step, outcome string) string {
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(events.DefaultSource+"/"+commandID+"/"+saga+"/"+step+"/"+outcome)).String()
}

// handle is one run's view of its record. Step progress and lease renewal
// both write through it, serialised, so each write knows the revision.
type handle struct {
	r    *Runner
	ws   string
	mu   sync.Mutex
	rec  Record
	rev  uint64
	lost bool
	// member: the run is the record's membership change (rec.Member),
	// whose command the events name, not the workspace's saga.
	member bool
}

func (h *handle) publish(ctx context.Context, step, outcome string, p events.Payload) error {
	env, err := h.envelope(step, outcome, p)
	if err != nil {
		return err
	}
	return h.send(ctx, env)
}

// envelope wraps p as the event this run publishes for one step and
// outcome, with its deterministic id.
func (h *handle) envelope(step, outcome string, p events.Payload) (events.Envelope, error) {
	h.mu.Lock()
	meta, saga := h.rec.meta(), h.rec.Saga
	if m := h.rec.Member; h.member && m != nil {
		meta, saga = m.meta(), m.Saga
	}
	meta.ID = EventID(meta.CausationID, saga, step, outcome)
	h.mu.Unlock()
	return events.New(h.ws, p, meta)
}

// send publishes envelopes in order, retrying transient failures.
func (h *handle) send(ctx context.Context, envs ...events.Envelope) error {
	ctx, cancel := h.detached(ctx)
	defer cancel()
	for _, env := range envs {
		err := h.r.retry(ctx, h.ws, "publish "+env.Type, func() error {
			_, err := h.r.pub.Publish(ctx, env)
			return err
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// detached returns a context for recording what already happened: a stop
// does not cut it short (the step is done, its record should say so), the
// step timeout bounds it.
func (h *handle) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), h.r.cfg.StepTimeout)
}

// update applies change to the record and saves it with compare-and-set;
// a conflict means another worker took the lease.
func (h *handle) update(ctx context.Context, change func(*Record)) error {
	ctx, cancel := h.detached(ctx)
	defer cancel()
	return h.r.retry(ctx, h.ws, "save progress", func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.lost {
			return backoff.Permanent(fmt.Errorf("lease on %s lost: %w", h.ws, ErrBusy))
		}
		next := h.rec
		next.StepsDone = append([]string(nil), h.rec.StepsDone...)
		if m := h.rec.Member; m != nil {
			cp := *m
			cp.StepsDone = append([]string(nil), m.StepsDone...)
			next.Member = &cp
		}
		change(&next)
		rev, err := h.r.progress.Save(ctx, h.ws, next, h.rev)
		if errors.Is(err, errConflict) {
			h.lost = true
			return fmt.Errorf("lease on %s lost: %w", h.ws, ErrBusy)
		}
		if err != nil {
			return err
		}
		h.rec, h.rev = next, rev
		return nil
	})
}

// keepLease renews the lease every third of its TTL until the returned
// stop is called. Renewals outlive ctx: a stopping run still holds its
// workspace until the step in flight is done. A failed renewal is tried
// again at the next tick; a conflict means the lease is lost.
func (h *handle) keepLease(ctx context.Context) (stop func()) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(h.r.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if err := h.renew(rctx); err != nil && rctx.Err() == nil {
					h.r.log.Warn("saga: lease renewal failed", zap.String("workspace", h.ws), zap.Error(err))
				}
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func (h *handle) renew(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost || h.rec.Lease == nil {
		return nil
	}
	next := h.rec
	next.Lease = h.r.lease()
	ctx, cancel := context.WithTimeout(ctx, h.r.cfg.LeaseTTL/3)
	defer cancel()
	rev, err := h.r.progress.Save(ctx, h.ws, next, h.rev)
	if errors.Is(err, errConflict) {
		h.lost = true
	}
	if err != nil {
		return err
	}
	h.rec, h.rev = next, rev
	return nil
}

func (h *handle) checkpoint(ctx context.Context) error {
	if ctx.Err() != nil {
		return ErrStopped
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost {
		return fmt.Errorf("lease on %s lost: %w", h.ws, ErrBusy)
	}
	return nil
}

// markStart returns when step first started, for a step that asks for it
// (Step.MarkStart): the time is saved in the record before the step's
// first attempt, and kept through crashes, resumes and retries until the
// step completes, so it is never later than any attempt's side effect.
func (h *handle) markStart(ctx context.Context, step Step) (time.Time, error) {
	if !step.MarkStart {
		return time.Time{}, nil
	}
	h.mu.Lock()
	prev := h.rec.Started
	h.mu.Unlock()
	if prev != nil && prev.Step == step.Name {
		return prev.At, nil
	}
	at := time.Now().UTC()
	return at, h.update(ctx, func(r *Record) { r.Started = &StepStart{Step: step.Name, At: at} })
}

func (h *handle) completed(ctx context.Context, s Saga, step Step, st *State) error {
	envs, err := h.stepEvents(s, step, st)
	if err != nil {
		return err
	}
	// The events and the progress go out together, one round trip instead
	// of two, and both must land before the next step. Should a crash keep
	// the progress but lose the events, run re-publishes the last finished
	// step's events when it resumes.
	var g errgroup.Group
	g.Go(func() error { return h.send(ctx, envs...) })
	g.Go(func() error {
		return h.update(ctx, func(r *Record) {
			r.StepsDone = append(r.StepsDone, step.Name)
			if r.Started != nil && r.Started.Step == step.Name {
				r.Started = nil
			}
		})
	})
	if err := g.Wait(); err != nil {
		return err
	}
	h.r.log.Info("saga: step completed", zap.String("workspace", h.ws), zap.String("saga", s.Name), zap.String("step", step.Name))
	return nil
}

// stepEvents are the events a finished step publishes: step.completed,
// then the step's own event if it has one.
func (h *handle) stepEvents(s Saga, step Step, st *State) ([]events.Envelope, error) {
	done, err := h.envelope(step.Name, "completed", &events.StepCompleted{Saga: s.Name, Step: step.Name})
	if err != nil {
		return nil, err
	}
	envs := []events.Envelope{done}
	if step.Event != nil {
		ev, err := h.envelope(step.Name, "event", step.Event(st))
		if err != nil {
			return nil, err
		}
		envs = append(envs, ev)
	}
	return envs, nil
}

// republishLast re-sends the events of the last finished step of each
// lane (steps without a lane count as one lane), in case a crash kept
// their progress but lost their events; when they had landed, the stream
// drops them as duplicates of their ids.
func (h *handle) republishLast(ctx context.Context, s Saga, st *State) error {
	last := map[string]Step{}
	var lanes []string
	for _, step := range s.Steps {
		if !h.isDone(step.Name) {
			continue
		}
		if _, seen := last[step.Lane]; !seen {
			lanes = append(lanes, step.Lane)
		}
		last[step.Lane] = step
	}
	for _, lane := range lanes {
		envs, err := h.stepEvents(s, last[lane], st)
		if err != nil {
			return err
		}
		if err := h.send(ctx, envs...); err != nil {
			return err
		}
	}
	return nil
}

func (h *handle) finish(ctx context.Context, s Saga, st *State) error {
	done := s.Done(st)
	done.Previous = s.Running
	if err := h.publish(ctx, "status", done.Status, &done); err != nil {
		return h.abort(ctx, err)
	}
	if err := h.update(ctx, func(r *Record) { r.Status, r.Lease = done.Status, nil }); err != nil {
		return h.abort(ctx, err)
	}
	h.r.log.Info("saga: done", zap.String("workspace", h.ws), zap.String("saga", s.Name), zap.String("status", done.Status))
	return nil
}

// fail records a step's failure: a step.failed event, a failed status
// event, then the record, its lease released.
func (h *handle) fail(ctx context.Context, s Saga, step string, cause error) error {
	msg := truncate(cause.Error(), 2000)
	retryable := !IsPermanent(cause)
	failed := &events.StepFailed{Saga: s.Name, Step: step, Error: msg, Retryable: retryable}
	if err := h.publish(ctx, step, "failed", failed); err != nil {
		return h.abort(ctx, err)
	}
	status := &events.StatusChanged{Status: events.StatusFailed, Previous: s.Running, Owner: h.rec.Params.Owner,
		LastError: msg, FailedStep: step}
	if err := h.publish(ctx, "status", events.StatusFailed+"/"+step, status); err != nil {
		return h.abort(ctx, err)
	}
	err := h.update(ctx, func(r *Record) {
		r.Status, r.FailedStep, r.LastError, r.Retryable, r.Lease = events.StatusFailed, step, msg, retryable, nil
	})
	if err != nil {
		return h.abort(ctx, err)
	}
	h.r.log.Warn("saga: failed", zap.String("workspace", h.ws), zap.String("saga", s.Name),
		zap.String("step", step), zap.Bool("retryable", retryable), zap.String("error", msg))
	return &FailedError{Saga: s.Name, Step: step, Retryable: retryable, Err: cause}
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
			h.r.log.Warn("saga: releasing lease failed", zap.String("workspace", h.ws), zap.Error(rerr))
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
