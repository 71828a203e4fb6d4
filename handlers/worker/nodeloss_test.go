package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/projection"
	"github.com/eo-workspaces/provisioner/handlers/worker"
)

// On a three-node cluster of nats-server processes, the node leading the
// projection's consumer and the worker's consumer of the partition of the
// next create is SIGKILLed while the process stays connected to another
// one (the case where only a missing heartbeat or an unanswered fetch
// tells; an in-process server's Shutdown hands its leaderships over
// first): both open their consumer again and go on without a restart, and
// the create sent after the loss is provisioned and projected.
func TestWorkerAndProjectionRideThroughTheLossOfTheirConsumersLeader(t *testing.T) {
	nodes := bustest.StartClusterProcesses(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := connectR3(t, ctx, nodes)
	h := newHarnessOn(t, b.JS)
	reg := prometheus.NewRegistry()
	h.metrics = reg
	cfg := testConfig("w1")
	cfg.MaxRetryElapsed = time.Minute // the cluster elects new leaders meanwhile
	stopWorker := h.start(cfg)
	projected := runProjection(t, h)

	h.send(create(t, "ws-before"))
	h.waitFor("ws-before ready and projected", func() bool {
		return h.status("ws-before") == events.StatusReady && projected("ws-before") == events.StatusReady
	})

	partition := worker.PartitionConsumerName(events.PartitionOf("ws-after", events.DefaultPartitions))
	leader := arrangeLeaders(t, ctx, b, partition)
	restarts := workerRestarts(t, reg)
	for _, n := range nodes {
		if n.Name == leader {
			n.Kill(t)
		}
	}
	lost := time.Now()
	t.Logf("killed %s, leader of both consumers; connected to %s", leader, b.Conn.ConnectedServerName())

	after := create(t, "ws-after")
	h.waitForWithin(30*time.Second, "the create accepted by the cluster", func() bool {
		pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
		defer pcancel()
		_, err := h.pub.Publish(pctx, after)
		return err == nil
	})
	h.waitForWithin(30*time.Second, "ws-after ready and projected", func() bool {
		return h.status("ws-after") == events.StatusReady && projected("ws-after") == events.StatusReady
	})
	t.Logf("ws-after ready and projected %s after the node loss", time.Since(lost).Round(time.Millisecond))
	if got := workerRestarts(t, reg); got <= restarts {
		t.Errorf("worker consumer restarts: %v before the loss, %v after", restarts, got)
	}
	if err := stopWorker(); err != nil {
		t.Errorf("worker: %v", err)
	}
}

// connectR3 connects to the cluster through the bus, as the provisioner
// does, with the topology set up replicated three times.
func connectR3(t *testing.T, ctx context.Context, nodes []*bustest.Node) *bus.Bus {
	t.Helper()
	b, err := bus.Connect(ctx, bus.Config{URL: bustest.URLs(nodes)}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	if err := events.EnsureTopology(ctx, b.JS, events.TopologyConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	return b
}

// runProjection runs a projector for the rest of the test, failing it if
// Run returns before then, and returns a reader of projected statuses.
func runProjection(t *testing.T, h *harness) (status func(ws string) string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	p, err := projection.NewProjector(ctx, h.js, h.schema, h.log)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		select {
		case err := <-done:
			t.Errorf("projection stopped by itself: %v", err)
		default:
		}
		cancel()
		<-done
	})
	kv, err := h.js.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		t.Fatal(err)
	}
	return func(ws string) string {
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		defer gcancel()
		e, err := kv.Get(gctx, ws)
		if err != nil {
			return ""
		}
		var w struct{ Status string }
		_ = json.Unmarshal(e.Value(), &w)
		return w.Status
	}
}

// workerRestarts counts the worker's consumer restarts, for any reason.
func workerRestarts(t *testing.T, reg *prometheus.Registry) float64 {
	const name = "workspace_worker_consumer_restarts_total"
	return sample(t, reg, name, "reason", "heartbeat") + sample(t, reg, name, "reason", "error")
}

// arrangeLeaders moves the worker's partition consumer and the
// projection's consumer until one server that the client is not
// connected to leads both, and returns its name. The projection's is an
// ordered consumer, on one server the cluster picks at random: deleted,
// it is made again elsewhere, maybe; the partition consumer's leader is
// asked to step down until the same server leads it.
func arrangeLeaders(t *testing.T, ctx context.Context, b *bus.Bus, partition string) string {
	t.Helper()
	stream, err := b.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	projectionOn := func() (name, host string) {
		infos := stream.ListConsumers(ctx)
		for info := range infos.Info() {
			if info.Config.AckPolicy == jetstream.AckNonePolicy && info.Cluster != nil {
				name, host = info.Name, info.Cluster.Leader
			}
		}
		return name, host
	}
	leaderOf := func(stream, consumer string) string {
		c, err := b.JS.Consumer(ctx, stream, consumer)
		if err != nil {
			return ""
		}
		info, err := c.Info(ctx)
		if err != nil || info.Cluster == nil {
			return ""
		}
		return info.Cluster.Leader
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		w := leaderOf(events.PartitionsStream, partition)
		name, p := projectionOn()
		switch {
		case w == "" || p == "":
		case p == b.Conn.ConnectedServerName():
			_ = stream.DeleteConsumer(ctx, name)
		case w != p:
			_, _ = b.Conn.RequestWithContext(ctx, "$JS.API.CONSUMER.LEADER.STEPDOWN."+events.PartitionsStream+"."+partition, nil)
		default:
			return w
		}
		time.Sleep(200 * time.Millisecond) // an election takes a moment; polled, not awaited blindly
	}
	t.Fatal("could not move both consumers to a server the client is not connected to")
	return ""
}

// Creates are under way when the node this worker is connected to is
// SIGKILLed: requests caught on the dead connection (publishes, saves of
// progress) get no answer. Bounded by bus.CallTimeout and tried again on
// the reconnected connection, the sagas go on within seconds of the loss,
// not after the step timeout (a minute here, as in production).
func TestProgressResumesSecondsAfterANodeKill(t *testing.T) {
	nodes := bustest.StartClusterProcesses(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	b := connectR3(t, ctx, nodes)
	h := newHarnessOn(t, b.JS)
	cfg := testConfig("w1")
	cfg.StepTimeout, cfg.MaxRetryElapsed, cfg.LeaseTTL = time.Minute, time.Minute, 30*time.Second
	cfg.AckWait = 10 * time.Second
	h.start(cfg)
	// Each provider call takes a moment, so sagas are mid-way at the kill.
	h.prov.SetBefore(func(string, string) error { time.Sleep(20 * time.Millisecond); return nil })

	var names []string
	for i := range 40 {
		ws := fmt.Sprintf("ws-kill-%02d", i)
		names = append(names, ws)
		h.send(create(t, ws))
	}
	ready := func() int {
		n := 0
		for _, ws := range names {
			if r, _, err := h.progress.Load(ctx, ws); err == nil && r.Status == events.StatusReady {
				n++
			}
		}
		return n
	}
	h.waitForWithin(time.Minute, "a quarter of the creates ready", func() bool { return ready() >= 10 })

	victim := b.Conn.ConnectedServerName()
	before := ready()
	for _, n := range nodes {
		if n.Name == victim {
			n.Kill(t)
		}
	}
	killed := time.Now()
	h.waitForWithin(time.Minute, "a create ready after the kill", func() bool { return ready() > before })
	next := time.Since(killed)
	h.waitForWithin(2*time.Minute, "every create ready", func() bool { return ready() == len(names) })
	all := time.Since(killed)
	t.Logf("killed %s (the worker's server) with %d of %d ready: the next ready %s later, all %s later",
		victim, before, len(names), next.Round(time.Millisecond), all.Round(time.Millisecond))
	// Raft elects new leaders for what the node led within its election
	// timeout (up to about 9 s). A request stuck on the dead connection
	// held its saga for the step's minute: all were ready 60 s after the
	// kill before calls were bounded, 8 s after.
	if all > 20*time.Second {
		t.Errorf("every create ready %s after the node loss, want within 20s", all)
	}
	for _, kind := range []string{"client", "bucket", "user"} {
		if n := h.prov.Creates(kind); n != len(names) {
			t.Errorf("%d %s made for %d workspaces", n, kind, len(names))
		}
	}
}
