package events_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
)

// Processes started at the same moment on a fresh cluster all set up the
// topology: five at once, while the cluster may still be electing its
// leader, each succeed (one alone used to time out the others' creates).
func TestTopologySetUpByManyAtOnceOnAFreshCluster(t *testing.T) {
	js := bustest.StartBareCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	errs := make([]error, 5)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() { errs[i] = events.EnsureTopology(ctx, js, events.TopologyConfig{Replicas: 3}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("process %d: %v", i, err)
		}
	}
	for _, name := range []string{events.CommandsStream, events.EventsStream, events.DeadLettersStream} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 3 {
			t.Errorf("stream %s has %d replicas", name, r)
		}
	}
}

// The advisories stream is bounded (it is no audit history) and drops
// its oldest, never a new advisory; the audit streams keep everything.
func TestOnlyTheAdvisoriesStreamIsBounded(t *testing.T) {
	for _, c := range events.StreamConfigs(events.TopologyConfig{}) {
		bounded := c.MaxAge > 0 || c.MaxMsgs > 0
		switch {
		case c.Name == events.AdvisoriesStream && (c.MaxAge != events.AdvisoriesMaxAge || c.Discard != jetstream.DiscardOld):
			t.Errorf("%s: max age %s, discard %v; want %s, old first", c.Name, c.MaxAge, c.Discard, events.AdvisoriesMaxAge)
		case c.Name != events.AdvisoriesStream && (bounded || c.Discard != jetstream.DiscardNew):
			t.Errorf("%s: bounded (max age %s, max msgs %d) or discarding old", c.Name, c.MaxAge, c.MaxMsgs)
		}
	}
}
