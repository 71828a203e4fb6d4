package sagas_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/eo-workspaces/provisioner/sagas"
)

// TestObserversSeeRetriesByProviderAndRunsInFlight checks the engine's
// metric callbacks: each retried failure is told by the provider that
// marked it, and a run is counted in flight from start to end.
func TestObserversSeeRetriesByProviderAndRunsInFlight(t *testing.T) {
	h := newHarness(t)
	fails := map[string]int{"EnsureBucket": 2, "EnsureClient": 1}
	var mu sync.Mutex
	h.prov.SetBefore(func(op, _ string) error {
		mu.Lock()
		defer mu.Unlock()
		if fails[op] == 0 {
			return nil
		}
		fails[op]--
		provider := map[string]string{"EnsureBucket": sagas.ProviderMinIO, "EnsureClient": sagas.ProviderKeycloak}[op]
		return sagas.FromProvider(provider, errors.New("503 service unavailable"))
	})
	retries := map[string]int{}
	inFlight, maxInFlight := 0, 0
	cfg := fastRetries("w1")
	cfg.ObserveRetry = func(provider string) {
		mu.Lock()
		defer mu.Unlock()
		retries[provider]++
	}
	cfg.ObserveRun = func(saga string) func() {
		if saga != sagas.SagaCreate {
			t.Errorf("run of %q, want %q", saga, sagas.SagaCreate)
		}
		inFlight++
		maxInFlight = max(maxInFlight, inFlight)
		return func() { inFlight-- }
	}
	if err := h.coordinator(cfg).Handle(context.Background(), create(t, "ws-observed")); err != nil {
		t.Fatal(err)
	}
	h.assertProvisioned("ws-observed")
	if retries[sagas.ProviderMinIO] != 2 || retries[sagas.ProviderKeycloak] != 1 {
		t.Errorf("retries by provider %v, want minio 2, keycloak 1", retries)
	}
	if maxInFlight != 1 || inFlight != 0 {
		t.Errorf("in flight: at most %d, at the end %d; want 1 then 0", maxInFlight, inFlight)
	}
}

func TestProviderOf(t *testing.T) {
	wrapped := errors.Join(errors.New("context"), sagas.FromProvider(sagas.ProviderKeycloak, sagas.Permanentf("403")))
	if got := sagas.ProviderOf(wrapped); got != sagas.ProviderKeycloak {
		t.Errorf("ProviderOf = %q", got)
	}
	if !sagas.IsPermanent(wrapped) {
		t.Error("the provider mark hides that the error is permanent")
	}
	if got := sagas.ProviderOf(errors.New("plain")); got != sagas.ProviderOther {
		t.Errorf("ProviderOf(unmarked) = %q", got)
	}
	if sagas.FromProvider(sagas.ProviderMinIO, nil) != nil {
		t.Error("FromProvider(nil) is not nil")
	}
}
