package projection

import (
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the projection's Prometheus series: how far the read model
// is behind the events stream, in events and in seconds.
type metrics struct {
	lag     prometheus.Gauge // events not yet applied
	delay   prometheus.Gauge // stored → applied, of the newest applied event
	applied prometheus.Gauge // stream sequence of the newest applied event
	leading prometheus.Gauge // 1 while this process holds the lease
	// restarts counts the pulls opened again after losing their server.
	restarts *prometheus.CounterVec // reason
}

func newMetrics() *metrics {
	return &metrics{
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "workspace_projection_lag_events",
			Help: "Events in WORKSPACE_EVENTS the projection has not applied yet (sampled while this process folds).",
		}),
		delay: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "workspace_projection_delay_seconds",
			Help: "Time from when the newest applied event was stored to when the read model had it.",
		}),
		applied: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "workspace_projection_last_applied_sequence",
			Help: "WORKSPACE_EVENTS stream sequence of the newest event applied to the read model.",
		}),
		leading: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "workspace_projection_leader",
			Help: "1 while this process holds the projection lease and folds events, 0 while it stands by.",
		}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workspace_projection_consumer_restarts_total",
			Help: "Times the projection's pull of events was opened again after losing its server, by reason (heartbeat, error).",
		}, []string{"reason"}),
	}
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.lag, m.delay, m.applied, m.leading, m.restarts} {
		if err := reg.Register(c); err != nil {
			return fmt.Errorf("register projection metrics: %w", err)
		}
	}
	return nil
}

func (m *metrics) consumerRestarted(reason string) { m.restarts.WithLabelValues(reason).Inc() }

// appliedEvent records an event the read model now holds.
func (m *metrics) appliedEvent(meta *jetstream.MsgMetadata, now time.Time) {
	m.applied.Set(float64(meta.Sequence.Stream))
	m.delay.Set(now.Sub(meta.Timestamp).Seconds())
}

// observeLag records a sample of the stream's last sequence against the
// checkpoint.
func (m *metrics) observeLag(last, applied uint64) {
	m.lag.Set(float64(last - min(applied, last)))
}
