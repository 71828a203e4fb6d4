package worker_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// TestMetricsRetriesInFlightAndPending holds every create at its Keycloak
// client step, so the sagas in flight and the commands the consumer has
// not delivered can be read, then lets them through after two MinIO
// failures each, which the retries counter must show by provider.
func TestMetricsRetriesInFlightAndPending(t *testing.T) {
	h := newHarness(t)
	reg := prometheus.NewRegistry()
	h.metrics = reg
	release := make(chan struct{})
	var releaseOnce sync.Once
	let := func() { releaseOnce.Do(func() { close(release) }) }
	var mu sync.Mutex
	bucketFails := map[string]int{}
	h.prov.SetBefore(func(op, ws string) error {
		switch op {
		case "EnsureClient":
			<-release
		case "EnsureBucket":
			mu.Lock()
			defer mu.Unlock()
			if bucketFails[ws] < 2 {
				bucketFails[ws]++
				return sagas.FromProvider(sagas.ProviderMinIO, errors.New("503 service unavailable"))
			}
		}
		return nil
	})
	cfg := testConfig("w1")
	cfg.SampleEvery = 20 * time.Millisecond
	h.start(cfg)
	t.Cleanup(let) // runs before the worker's stop, which would wait on the hook
	retries := func(p string) float64 {
		return sample(t, reg, "workspace_worker_retries_total", "provider", p)
	}
	if n, err := testutil.GatherAndCount(reg, "workspace_worker_retries_total", "workspace_worker_sagas_in_flight"); err != nil || n < 11 {
		t.Fatalf("zeroed series %d (%v): want every provider and saga before the first run", n, err)
	}

	// Every command is held (queued behind the 4 running) and none acked:
	// the consumer's pending and ack-pending add up to all of them.
	const n = 20
	for i := range n {
		h.send(create(t, fmt.Sprintf("ws-p%d", i)))
	}
	h.waitFor("4 creates in flight", func() bool {
		return sample(t, reg, "workspace_worker_sagas_in_flight", "saga", sagas.SagaCreate) == 4
	})
	h.waitFor("every command pending on the consumer", func() bool {
		return sample(t, reg, "workspace_worker_consumer_pending")+sample(t, reg, "workspace_worker_consumer_ack_pending") == n
	})
	let()
	h.waitFor("every workspace ready", func() bool {
		for i := range n {
			if h.status(fmt.Sprintf("ws-p%d", i)) != events.StatusReady {
				return false
			}
		}
		return true
	})
	h.waitFor("nothing pending or in flight", func() bool {
		return sample(t, reg, "workspace_worker_consumer_ack_pending") == 0 &&
			sample(t, reg, "workspace_worker_sagas_in_flight", "saga", sagas.SagaCreate) == 0
	})
	if got := retries(sagas.ProviderMinIO); got != 2*n {
		t.Errorf("minio retries %v, want %d", got, 2*n)
	}
	if got := retries(sagas.ProviderKeycloak); got != 0 {
		t.Errorf("keycloak retries %v, want 0", got)
	}
}

// sample reads the value of name's series with the label pair (none
// for a plain gauge) from reg.
func sample(t *testing.T, reg *prometheus.Registry, name string, labelPair ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if len(labelPair) == 0 || hasLabel(m, labelPair[0], labelPair[1]) {
				return m.GetGauge().GetValue() + m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labelPair)
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
