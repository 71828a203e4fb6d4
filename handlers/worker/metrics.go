package worker

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// metrics are the worker's Prometheus series.
type metrics struct {
	commands    *prometheus.CounterVec   // command, outcome
	steps       *prometheus.HistogramVec // saga, step, outcome
	deadLetters *prometheus.CounterVec   // subject
	retries     *prometheus.CounterVec   // provider
	inFlight    *prometheus.GaugeVec     // saga
	pending     prometheus.Gauge         // commands not yet delivered
	ackPending  prometheus.Gauge         // delivered, not yet acknowledged
	restarts    *prometheus.CounterVec   // reason
}

// newMetrics registers the series with reg; with reg nil they are kept
// but exported nowhere.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		commands: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workspace_worker_commands_total",
			Help: "Command deliveries by command and outcome (done, failed, rejected, requeued).",
		}, []string{"command", "outcome"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "workspace_worker_step_duration_seconds",
			Help:    "Saga step duration, retries included, by saga, step and outcome (done, failed).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}, []string{"saga", "step", "outcome"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workspace_worker_dead_letters_total",
			Help: "Messages copied to WORKSPACE_DEAD_LETTERS, by dead-letter subject.",
		}, []string{"subject"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workspace_worker_retries_total",
			Help: "Transient failures a saga retried in place, by provider (keycloak, minio, nats, other).",
		}, []string{"provider"}),
		inFlight: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "workspace_worker_sagas_in_flight",
			Help: "Saga runs under way in this worker, by saga.",
		}, []string{"saga"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "workspace_worker_consumer_pending",
			Help: "Commands in WORKSPACE_COMMANDS not yet delivered to any worker (the shared consumer's NumPending, sampled).",
		}),
		ackPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "workspace_worker_consumer_ack_pending",
			Help: "Commands delivered to a worker and not yet acknowledged (the shared consumer's NumAckPending, sampled).",
		}),
		restarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workspace_worker_consumer_restarts_total",
			Help: "Times a partition consumer of the worker was opened again after an error, by reason (heartbeat, error).",
		}, []string{"reason"}),
	}
	m.zeroSeries()
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.commands, m.steps, m.deadLetters, m.retries, m.inFlight, m.pending, m.ackPending, m.restarts} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register worker metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) consumerRestarted(reason string) { m.restarts.WithLabelValues(reason).Inc() }

func (m *metrics) observeStep(saga, step string, took time.Duration, err error) {
	outcome := "done"
	if err != nil {
		outcome = "failed"
	}
	m.steps.WithLabelValues(saga, step, outcome).Observe(took.Seconds())
}

// zeroSeries creates the labelled series that are known in advance, so a
// dashboard shows 0 rather than no data before the first retry or run.
func (m *metrics) zeroSeries() {
	for _, p := range []string{sagas.ProviderKeycloak, sagas.ProviderMinIO, sagas.ProviderNATS, sagas.ProviderOther} {
		m.retries.WithLabelValues(p)
	}
	for _, s := range []string{sagas.SagaCreate, sagas.SagaDelete, sagas.SagaMemberAdd, sagas.SagaMemberRemove,
		sagas.SagaRotate, sagas.SagaMigrate, sagas.SagaQuota} {
		m.inFlight.WithLabelValues(s)
	}
	for _, s := range []string{DeadLetterRejected, DeadLetterMaxDeliveries} {
		m.deadLetters.WithLabelValues(s)
	}
	for _, r := range []string{"heartbeat", "error"} {
		m.restarts.WithLabelValues(r)
	}
}

func (m *metrics) observeRetry(provider string) { m.retries.WithLabelValues(provider).Inc() }

// observeRun counts a saga run in flight until the returned func is called.
func (m *metrics) observeRun(saga string) (ended func()) {
	g := m.inFlight.WithLabelValues(saga)
	g.Inc()
	return g.Dec
}

// observeConsumer records a sample of the commands consumer's state.
func (m *metrics) observeConsumer(pending, ackPending uint64) {
	m.pending.Set(float64(pending))
	m.ackPending.Set(float64(ackPending))
}

// commandOutcome names what settle did with a message for the counter.
func commandOutcome(err error, finished bool) string {
	var rejected *sagas.RejectedError
	var failed *sagas.FailedError
	switch {
	case !finished:
		return "requeued"
	case errors.As(err, &rejected):
		return "rejected"
	case errors.As(err, &failed):
		return "failed"
	default:
		return "done"
	}
}

// commandOf is the command part of a command subject ("member.add"), or
// "unknown" for a subject that is not one.
func commandOf(subject string) string {
	ws := events.WorkspaceFromSubject(subject)
	cmd, ok := strings.CutPrefix(subject, events.CommandSubjectPrefix+ws+".")
	if ws == "" || !ok {
		return "unknown"
	}
	if _, known := events.Lookup("workspace." + cmd); !known {
		return "unknown"
	}
	return cmd
}
