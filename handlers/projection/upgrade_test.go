package projection_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/projection"
	"github.com/eo-workspaces/provisioner/schemas"
)

// Before the lease, the projection read with the durable consumer
// "projection"; after an upgrade it resumes after that consumer's ack
// floor, neither folding again what was folded nor skipping what was
// not, and deletes the consumer.
func TestUpgradeResumesAfterTheOldConsumersAckFloor(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := bustest.Start(t)
	folded := publishScripts(t, ctx, b.JS, []string{"ws-folded-before"}, 0)
	old, err := b.JS.CreateOrUpdateConsumer(ctx, events.EventsStream, jetstream.ConsumerConfig{
		Durable: "projection", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	batch, err := old.Fetch(len(script()))
	if err != nil {
		t.Fatal(err)
	}
	for msg := range batch.Messages() {
		if err := msg.DoubleAck(ctx); err != nil {
			t.Fatal(err)
		}
	}
	next := publishScripts(t, ctx, b.JS, []string{"ws-after-upgrade"}, 0)

	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	p, err := projection.NewProjector(ctx, b.JS, v, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	pctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	defer func() { stop(); <-done }()
	checkModel(t, ctx, b.JS, next)

	kv, err := b.JS.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(ctx, "ws-folded-before"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("events up to the old consumer's ack floor (%d) folded again: %v", folded["ws-folded-before"], err)
	}
	if _, err := b.JS.Consumer(ctx, events.EventsStream, "projection"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Errorf("the old consumer is still there: %v", err)
	}
}
