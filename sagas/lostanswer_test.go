package sagas_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/names"
)

// lostAnswers is the saga store as seen through a connection whose server
// died: every third save that lands never has its answer come back.
type lostAnswers struct {
	sagas.ProgressStore
	mu    sync.Mutex
	saves int
	lost  int
}

func (l *lostAnswers) Save(ctx context.Context, ws string, r sagas.Record, rev uint64) (uint64, error) {
	next, err := l.ProgressStore.Save(ctx, ws, r, rev)
	l.mu.Lock()
	defer l.mu.Unlock()
	if err == nil {
		l.saves++
	}
	if err == nil && l.saves%3 == 0 {
		l.lost++
		return 0, fmt.Errorf("save saga of %s: %w", ws, context.DeadlineExceeded)
	}
	return next, err
}

// A save whose answer was lost had landed: the next save conflicts with
// it. The run reads the record back, finds its own write, and goes on,
// instead of taking the conflict for another worker's and giving up its
// lease (the saga would stop, and wait for the redelivery); the create
// ends ready with one of each resource.
func TestASaveWhoseAnswerWasLostIsRecognisedAsOurs(t *testing.T) {
	h := newHarness(t)
	// What one create makes, answered every time.
	if err := h.coordinator(fastRetries("w0")).Handle(context.Background(), create(t, "ws-answered")); err != nil {
		t.Fatal(err)
	}
	kinds := []string{"client", "role", "mapping", "bucket", "policy", "user"}
	one := map[string]int{}
	for _, kind := range kinds {
		one[kind] = h.prov.Creates(kind)
	}
	store := &lostAnswers{ProgressStore: h.progress}
	app, err := sagas.NewApplication(sagas.AppConfig{Engine: fastRetries("w1"), Endpoint: endpoint, Region: region}, sagas.Ports{
		Progress: store, Events: h.pub, Identity: h.prov, Store: h.prov, Vault: h.vault,
		Names: names.NewKV(h.namesKV), Log: h.log,
	})
	if err != nil {
		t.Fatal(err)
	}
	// A save before the run holds its handle (the lease taken) fails the
	// delivery, which the worker sends back: handled again, as redelivered.
	cmd := create(t, "ws-lost-answers")
	for attempt := 1; ; attempt++ {
		err := app.Handle(context.Background(), cmd)
		if err == nil {
			break
		}
		if errors.Is(err, sagas.ErrBusy) || errors.Is(err, sagas.ErrRecordChanged) || attempt == 5 {
			t.Fatalf("create with lost answers, delivery %d: %v", attempt, err)
		}
	}
	if rec := h.record("ws-lost-answers"); rec.Status != events.StatusReady || rec.Lease != nil {
		t.Fatalf("record %+v, want ready with the lease released", rec)
	}
	if store.lost < 3 {
		t.Fatalf("only %d answers lost; the test proves nothing", store.lost)
	}
	for _, kind := range kinds {
		if n := h.prov.Creates(kind) - one[kind]; n != one[kind] {
			t.Errorf("%d %s made, want %d as with every answer", n, kind, one[kind])
		}
	}
	if n := h.logs.FilterMessage("saga: a save whose answer was lost had landed; going on from it").Len(); n == 0 {
		t.Error("no write recognised as ours")
	}
}
