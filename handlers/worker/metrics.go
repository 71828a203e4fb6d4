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
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.commands, m.steps, m.deadLetters} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register worker metrics: %w", err)
		}
	}
	return m, nil
}

func (m *metrics) observeStep(saga, step string, took time.Duration, err error) {
	outcome := "done"
	if err != nil {
		outcome = "failed"
	}
	m.steps.WithLabelValues(saga, step, outcome).Observe(took.Seconds())
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
