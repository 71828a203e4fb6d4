package sagas

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v4"
	"go.uber.org/zap"
)

// handle is one run's view of its record. Step progress and lease renewal
// both write through it, serialised, so each write knows the revision.
type handle struct {
	e    *Engine
	s    Saga
	ws   string
	mu   sync.Mutex
	rec  Record
	rev  uint64
	lost bool
	// unsure is the record of the last write that got no answer: it may
	// have landed (see write).
	unsure *Record
}

// run returns the slot of r this run drives: the side slot for a side
// saga, the record's own run otherwise.
func (h *handle) run(r *Record) *Run {
	if h.s.Side {
		return r.Member
	}
	return &r.Run
}

// isDone reports whether the record has the step as finished.
func (h *handle) isDone(step string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Contains(h.run(&h.rec).StepsDone, step)
}

// detached returns a context for recording what already happened: a stop
// does not cut it short (the step is done, its record should say so), the
// step timeout bounds it.
func (h *handle) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), h.e.cfg.StepTimeout)
}

// update applies change to a copy of the record and saves it with
// compare-and-set; a conflict means another worker took the lease.
func (h *handle) update(ctx context.Context, change func(*Record)) error {
	ctx, cancel := h.detached(ctx)
	defer cancel()
	return h.e.retry(ctx, h.ws, "save progress", func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.lost {
			return backoff.Permanent(fmt.Errorf("lease on %s lost: %w", h.ws, ErrBusy))
		}
		actx, cancel := context.WithTimeout(ctx, busCallTimeout)
		defer cancel()
		err := h.write(actx, change)
		if errors.Is(err, ErrRecordChanged) {
			return fmt.Errorf("lease on %s lost: %w", h.ws, ErrBusy)
		}
		if err != nil {
			return FromProvider(ProviderNATS, err)
		}
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
	wg.Go(func() {
		t := time.NewTicker(h.e.cfg.LeaseTTL / 3)
		defer t.Stop()
		for {
			select {
			case <-rctx.Done():
				return
			case <-t.C:
				if err := h.renew(rctx); err != nil && rctx.Err() == nil {
					h.e.log.Warn("saga: lease renewal failed", zap.String("workspace", h.ws), zap.Error(err))
				}
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

func (h *handle) renew(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.lost || h.rec.Lease == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, h.e.cfg.LeaseTTL/3)
	defer cancel()
	return h.write(ctx, func(r *Record) { r.Lease = h.e.lease() })
}

// checkpoint tells, between steps, whether the run may go on.
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
// fresh tells that this call saved it: the step has never been tried.
func (h *handle) markStart(ctx context.Context, step Step) (at time.Time, fresh bool, err error) {
	if !step.MarkStart {
		return time.Time{}, false, nil
	}
	h.mu.Lock()
	prev := h.run(&h.rec).Started
	h.mu.Unlock()
	if prev != nil && prev.Step == step.Name {
		return prev.At, false, nil
	}
	at = time.Now().UTC()
	err = h.update(ctx, func(r *Record) { h.run(r).Started = &StepStart{Step: step.Name, At: at} })
	return at, err == nil, err
}
