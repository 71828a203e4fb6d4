package sagas

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// EngineConfig tunes retries, leases and step time limits.
type EngineConfig struct {
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
	// ObserveRetry, if set, learns of every transient failure retried in
	// place, by the provider that failed (ProviderOf); for metrics.
	ObserveRetry func(provider string)
	// ObserveRun, if set, learns that a run of saga started and calls the
	// returned func when it ends; for the in-flight metrics.
	ObserveRun func(saga string) (ended func())
}

// The engine's defaults, defined once; the worker's flags and config
// start from them.
const (
	DefaultLeaseTTL        = 30 * time.Second
	DefaultMaxRetryElapsed = 5 * time.Minute
	DefaultRetryInitial    = 250 * time.Millisecond
	DefaultRetryMax        = 15 * time.Second
	DefaultStepTimeout     = time.Minute
)

// WithDefaults fills the zero fields.
func (c EngineConfig) WithDefaults() EngineConfig {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.LeaseTTL, DefaultLeaseTTL)
	def(&c.MaxRetryElapsed, DefaultMaxRetryElapsed)
	def(&c.RetryInitial, DefaultRetryInitial)
	def(&c.RetryMax, DefaultRetryMax)
	def(&c.StepTimeout, DefaultStepTimeout)
	return c
}

// Validate names the first field that cannot work.
func (c EngineConfig) Validate() error {
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

// Engine runs sagas of every kind step by step, persisting progress
// after each: the lease, the progress, the events and the handling of
// failures are here once, the sagas themselves are declarative data.
type Engine struct {
	cfg      EngineConfig
	progress ProgressStore
	pub      EventPublisher
	log      *zap.Logger
}

// NewEngine checks cfg (after defaults) and returns an engine.
func NewEngine(cfg EngineConfig, progress ProgressStore, pub EventPublisher, log *zap.Logger) (*Engine, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("saga engine: %w", err)
	}
	if progress == nil || pub == nil || log == nil {
		return nil, errors.New("saga engine: progress, publisher and logger are required")
	}
	return &Engine{cfg: cfg, progress: progress, pub: pub, log: log}, nil
}

// Run drives the run of s that rec holds (rec.Member for a side saga,
// the record's own run otherwise) from its first unfinished step: it
// takes the workspace's lease, unless another live worker holds it
// (ErrBusy), saves rec over rev (0: no record yet) and runs the steps.
//
// Every step's event is published no later than its progress is saved:
// should a crash keep the progress but lose the events, the run
// re-publishes them when it resumes, with the same ids, which the stream
// drops if they had landed. Returns nil, *FailedError, ErrStopped,
// ErrBusy, ErrRecordChanged (rec changed since it was read) or an
// infrastructure error.
func (e *Engine) Run(ctx context.Context, s Saga, ws string, rec Record, rev uint64) error {
	if rec.LeasedByOther(e.cfg.WorkerID, time.Now()) {
		return fmt.Errorf("%s held by %s: %w", ws, rec.Lease.WorkerID, ErrBusy)
	}
	if s.Side && rec.Member == nil {
		return fmt.Errorf("side saga %s of %s: the record holds no side run", s.Name, ws)
	}
	rec.Lease = e.lease()
	rev, err := e.progress.Save(ctx, ws, rec, rev)
	if err != nil {
		return err
	}
	h := &handle{e: e, s: s, ws: ws, rec: rec, rev: rev}
	run := h.run(&rec)
	e.log.Info("saga: running", zap.String("workspace", ws), zap.String("saga", s.Name),
		zap.String("command_id", run.CommandID), zap.String("actor", run.Actor), zap.Strings("steps_done", run.StepsDone))
	if e.cfg.ObserveRun != nil {
		defer e.cfg.ObserveRun(s.Name)()
	}
	return h.drive(ctx)
}

// lease returns a fresh lease of this worker.
func (e *Engine) lease() *Lease {
	return &Lease{WorkerID: e.cfg.WorkerID, Until: time.Now().Add(e.cfg.LeaseTTL)}
}
