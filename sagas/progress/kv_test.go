package progress_test

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/progress"
)

// Writers racing on one record of a replicated bucket: the server turns
// all but one away, mostly with error code 10164 (the replicated form of
// "wrong last sequence"), and each of them must see ErrRecordChanged, or
// a worker would not notice it lost its lease.
func TestConcurrentSavesOnAReplicatedBucketHaveOneWinner(t *testing.T) {
	js := bustest.StartCluster(t)
	ctx := context.Background()
	kv, err := js.KeyValue(ctx, events.SagaBucket)
	if err != nil {
		t.Fatal(err)
	}
	store := progress.NewKV(kv)
	rev, err := store.Save(ctx, "ws-race", sagas.Record{Status: events.StatusReady}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 10 {
		var wg sync.WaitGroup
		errs := make([]error, 6)
		revs := make([]uint64, len(errs))
		for i := range errs {
			wg.Go(func() {
				rec := sagas.Record{Status: events.StatusReady, Lease: &sagas.Lease{WorkerID: string(rune('a' + i))}}
				revs[i], errs[i] = store.Save(ctx, "ws-race", rec, rev)
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
				rev = revs[i]
			case !errors.Is(err, sagas.ErrRecordChanged):
				t.Fatalf("round %d: a lost compare-and-set not seen as one: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d writers won, want 1", round, won)
		}
	}
}
