package sagas_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// losingPublisher drops, once, the step.completed event of one step while
// answering success: the event never reached the stream although the
// step's progress did, as when a worker dies between the two.
type losingPublisher struct {
	next sagas.EventPublisher
	step string
	lost atomic.Bool
}

func (p *losingPublisher) Publish(ctx context.Context, env events.Envelope) (events.Published, error) {
	if env.Type == events.TypeStepCompleted && !p.lost.Load() {
		d, err := env.DecodeData()
		if err == nil && d.(*events.StepCompleted).Step == p.step {
			p.lost.Store(true)
			return events.Published{}, nil
		}
	}
	return p.next.Publish(ctx, env)
}

// TestEventsLostWithTheProgressKeptAreRepublished: the quota step's
// progress is saved but its event is lost, then the worker dies in the
// next step (the policy); the resumed run publishes the lost event, so the trail is
// whole.
func TestEventsLostWithTheProgressKeptAreRepublished(t *testing.T) {
	h := newHarness(t)
	lossy := &losingPublisher{next: h.pub, step: "quota"}
	cmd := create(t, "ws-lost")
	crashAfter(h.prov, "EnsureBucketPolicy")
	crashed, err := handleCrashing(t, h.application(fastRetries("w1"), lossy), cmd)
	if !crashed || !lossy.lost.Load() {
		t.Fatalf("crashed %v, event lost %v (err %v)", crashed, lossy.lost.Load(), err)
	}
	if done := h.record("ws-lost").StepsDone; !slices.Contains(done, "quota") {
		t.Fatalf("the quota step's progress was not kept: %v", done)
	}
	if err := h.coordinator(fastRetries("w1")).Handle(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	h.assertProvisioned("ws-lost")
	var steps []string
	for _, env := range h.eventsOf("ws-lost") {
		if env.Type == events.TypeStepCompleted {
			d, _ := env.DecodeData()
			steps = append(steps, d.(*events.StepCompleted).Step)
		}
	}
	slices.Sort(steps)
	want := slices.Clone(createSteps)
	slices.Sort(want)
	if !slices.Equal(steps, want) {
		t.Fatalf("step.completed events %v, want each of %v once", steps, want)
	}
}
