package worker

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/progress"
)

// DefaultReconcileInterval is how often the drift sweep runs.
const DefaultReconcileInterval = 10 * time.Minute

// DefaultReconcileKeep is how long the commands stream keeps a sweep's
// reconcile: a day of sweeps to look back on, not every one for good (at
// 10,000 workspaces every 10 minutes, 0.7 GB a day). What a reconcile
// found stays in the events stream for good.
const DefaultReconcileKeep = 24 * time.Hour

// driftMetrics are the drift sweep's series.
type driftMetrics struct {
	sweeps   prometheus.Counter
	repaired *prometheus.CounterVec // kind
	degraded prometheus.Gauge
}

func newDriftMetrics(reg prometheus.Registerer) (*driftMetrics, error) {
	m := &driftMetrics{
		sweeps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workspace_worker_drift_sweeps_total",
			Help: "Drift sweeps run by this worker (each publishes a reconcile command per ready or degraded workspace).",
		}),
		repaired: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workspace_worker_drift_repaired_total",
			Help: "Resources a reconcile found missing or changed and repaired, by kind.",
		}, []string{"kind"}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "workspace_worker_degraded_workspaces",
			Help: "Workspaces degraded (drift a reconcile must not repair) at this worker's last sweep.",
		}),
	}
	for _, k := range []string{events.DriftClient, events.DriftClientRole, events.DriftClientScope, events.DriftRoleMap, events.DriftBucket,
		events.DriftPolicy, events.DriftMemberKey, events.DriftQuota} {
		m.repaired.WithLabelValues(k)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.sweeps, m.repaired, m.degraded} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register drift metrics: %w", err)
		}
	}
	return m, nil
}

func (m *driftMetrics) observeDrift(repaired []events.Repair, _ bool) {
	for _, r := range repaired {
		m.repaired.WithLabelValues(r.Kind).Inc()
	}
}

// sweepDrift runs the drift sweep until the returned stop, unless it is
// disabled (a negative interval). Sweeps start on the interval's
// boundaries counted from the zero time, the same instants on every
// worker, and each names its commands after its boundary: when several
// workers sweep, their commands for one workspace share an id and the
// stream keeps one, so one reconcile runs per workspace and interval.
func (w *Worker) sweepDrift(ctx context.Context) (stop func(), err error) {
	every := w.cfg.ReconcileInterval
	if every < 0 {
		return func() {}, nil
	}
	sagaKV, err := w.deps.JS.KeyValue(ctx, events.SagaBucket)
	if err != nil {
		return nil, fmt.Errorf("saga bucket: %w", err)
	}
	store, log := progress.NewKV(sagaKV), w.log.Named("drift")
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			slot := time.Now().Truncate(every).Add(every)
			t := time.NewTimer(time.Until(slot))
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			swept, err := sagas.SweepAll(ctx, store, store, w.sweepPublisher(), slot, log)
			if err != nil && ctx.Err() == nil {
				log.Warn("drift sweep failed; the next interval tries again", zap.Error(err))
				continue
			}
			w.drift.sweeps.Inc()
			w.drift.degraded.Set(float64(swept.Degraded))
		}
	}()
	return func() { cancel(); <-done }, nil
}

// sweepPublisher publishes the sweep's reconciles to expire after
// ReconcileKeep.
func (w *Worker) sweepPublisher() sagas.EventPublisher {
	if p, ok := w.deps.Publisher.(*events.Publisher); ok && w.cfg.ReconcileKeep > 0 {
		return p.Expiring(w.cfg.ReconcileKeep)
	}
	return w.deps.Publisher
}
