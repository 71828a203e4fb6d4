package api

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the API's Prometheus series.
type metrics struct {
	requests  *prometheus.CounterVec   // route, code
	duration  *prometheus.HistogramVec // route, code
	published *prometheus.CounterVec   // type
	replays   prometheus.Counter
}

const unmatchedRoute = "unmatched"

// newMetrics registers the series with reg, or with a private registry
// (plus the Go and process collectors) when reg is nil. It returns what
// /metrics should serve.
func newMetrics(reg prometheus.Registerer) (*metrics, prometheus.Gatherer, error) {
	var gatherer prometheus.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
		reg, gatherer = r, r
	} else if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	} else {
		gatherer = prometheus.DefaultGatherer
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workspace_api_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "workspace_api_request_duration_seconds",
			Help:    "HTTP request duration by route pattern and status code.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .02, .05, .1, .25, .5, 1, 2.5},
		}, []string{"route", "code"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "workspace_api_commands_published_total",
			Help: "Commands published to JetStream by type (duplicates JetStream dropped included).",
		}, []string{"type"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "workspace_api_idempotent_replays_total",
			Help: "Requests answered from a stored Idempotency-Key answer.",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.published, m.replays} {
		if err := reg.Register(c); err != nil {
			return nil, nil, fmt.Errorf("register api metrics: %w", err)
		}
	}
	return m, gatherer, nil
}

// forRoute returns the observer of one route, with its label curried so a
// request costs one label lookup per series.
func (m *metrics) forRoute(pattern string) func(code int, d time.Duration) {
	reqs := m.requests.MustCurryWith(prometheus.Labels{"route": pattern})
	dur := m.duration.MustCurryWith(prometheus.Labels{"route": pattern})
	return func(code int, d time.Duration) {
		c := strconv.Itoa(code)
		reqs.WithLabelValues(c).Inc()
		dur.WithLabelValues(c).Observe(d.Seconds())
	}
}

func (m *metrics) unmatched(code int) {
	m.requests.WithLabelValues(unmatchedRoute, strconv.Itoa(code)).Inc()
}

func metricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
