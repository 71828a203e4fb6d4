package bus_test

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/bus/bustest"
)

// TestSamplePending reports what a consumer holds back, at once and on
// every tick, and stops when asked.
func TestSamplePending(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	js := bustest.Start(t).JS
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "SAMPLE", Subjects: []string{"sample.>"}}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := js.Publish(ctx, "sample.x", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "SAMPLE", jetstream.ConsumerConfig{Durable: "sampled", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	samples := make(chan [2]uint64, 16)
	stop := bus.SamplePending(ctx, cons, 10*time.Millisecond, func(pending, ackPending uint64) {
		select {
		case samples <- [2]uint64{pending, ackPending}:
		default:
		}
	})
	for range 2 { // the first sample, then a tick's
		if got := <-samples; got != [2]uint64{3, 0} {
			t.Fatalf("sample %v, want 3 pending, 0 ack pending", got)
		}
	}
	stop()
}
