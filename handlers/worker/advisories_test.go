package worker_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
)

// A command runs out of deliveries while no worker runs (another client
// of the worker's consumer Naks it): the server's advisory is kept in its
// stream, and the next worker to start dead-letters the command.
func TestAdvisorySentWhileNoWorkerRunsIsKept(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	cfg := testConfig("w1")
	cfg.MaxDeliver = 2
	stop := h.start(cfg)
	cmd := create(t, "ws-advised")
	h.waitFor("the partition's consumer", func() bool {
		_, err := h.js.Consumer(ctx, events.PartitionsStream, worker.PartitionConsumerName(events.PartitionOf(cmd.Subject, events.DefaultPartitions)))
		return err == nil
	})
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	h.send(cmd)
	cons := h.partitionConsumer("ws-advised")
	h.waitFor("an advisory in its stream", func() bool {
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(200*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			_ = m.Nak()
		}
		return h.streamMsgs(events.AdvisoriesStream) == 1
	})
	if n := len(h.deadLetters(worker.DeadLetterMaxDeliveries)); n != 0 {
		t.Fatalf("%d dead letters with no worker running", n)
	}
	h.start(cfg)
	h.waitFor("the max-deliveries dead letter", func() bool { return len(h.deadLetters(worker.DeadLetterMaxDeliveries)) == 1 })
	var env events.Envelope
	if m := h.deadLetters(worker.DeadLetterMaxDeliveries)[0]; json.Unmarshal(m.Data, &env) != nil || env.ID != cmd.ID {
		t.Fatalf("dead letter holds %q, want command %s", m.Data, cmd.ID)
	}
	h.waitFor("the advisory acknowledged", func() bool {
		c, err := h.js.Consumer(ctx, events.AdvisoriesStream, worker.AdvisoryConsumerName)
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		return err == nil && info.NumAckPending == 0 && info.NumPending == 0
	})
}

func (h *harness) streamMsgs(stream string) uint64 {
	h.t.Helper()
	s, err := h.js.Stream(context.Background(), stream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}
