package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/projection"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/schemas"
)

// createEvents are a create's events as the worker publishes them, nine
// per workspace as on the dev stack.
func createEvents(ws string) []events.Payload {
	evs := []events.Payload{&events.StatusChanged{Status: events.StatusProvisioning, Owner: "alice"}}
	for _, step := range []string{"keycloak_client", "keycloak_roles", "owner_role", "bucket", "quota", "policy"} {
		evs = append(evs, &events.StepCompleted{Saga: "create", Step: step})
	}
	return append(evs, &events.MemberAdded{Username: "alice", Role: events.RoleAdmin},
		&events.StatusChanged{Status: events.StatusReady, Storage: &events.Storage{Bucket: ws, Endpoint: "http://s3", Region: "r"}})
}

// BenchmarkRebuild replays BENCH_WORKSPACES (default 3,000) workspaces'
// events, nine each, three ways in one run: the old rebuild (the bucket
// emptied, then the projection role replaying through its consumer, a KV
// read and write per event), Rebuild into an empty bucket, and Rebuild
// over a model already right (the usual case: nothing to write).
func BenchmarkRebuild(b *testing.B) {
	n := 3000
	if s := os.Getenv("BENCH_WORKSPACES"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < 1 {
			b.Fatalf("BENCH_WORKSPACES=%q: want a positive integer", s)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	bs := bustest.Start(b)
	v, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	pub := events.NewPublisher(bs.JS, v)
	for i := range n {
		ws := fmt.Sprintf("ws-bench-%d", i)
		for _, p := range createEvents(ws) {
			env, err := events.New(ws, p, events.Meta{Actor: "bench"})
			if err != nil {
				b.Fatal(err)
			}
			msg, err := pub.Message(env)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bs.JS.PublishMsgAsync(msg); err != nil {
				b.Fatal(err)
			}
		}
	}
	<-bs.JS.PublishAsyncComplete()
	stream, err := bs.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		b.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		b.Fatal(err)
	}
	total := info.State.Msgs
	b.ResetTimer()

	// The old path, as `rebuild-projection` did it: consumer and entries
	// gone, then the projection role replays from the first event.
	clearModel(ctx, b, bs.JS)
	t0 := time.Now()
	stop := runProjector(ctx, b, bs.JS, v)
	awaitApplied(ctx, b, bs.JS, fmt.Sprintf("ws-bench-%d", n-1), info.State.LastSeq)
	old := time.Since(t0)
	stop()

	clearModel(ctx, b, bs.JS)
	empty, err := projection.Rebuild(ctx, bs.JS, v, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	again, err := projection.Rebuild(ctx, bs.JS, v, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	if empty.Written != n || again.Written != 0 || empty.Events != int(total) {
		b.Fatalf("rebuilds wrote %d then %d of %d workspaces, read %d of %d events", empty.Written, again.Written, n, empty.Events, total)
	}
	oldRate := float64(total) / old.Seconds()
	b.ReportMetric(oldRate, "old-events/s")
	b.ReportMetric(empty.EventsPerSecond(), "events/s")
	fmt.Printf("rebuild of %d events, %d workspaces:\n", total, n)
	fmt.Printf("  old: emptied, replayed by the projection role  %8s  %8.0f events/s\n", old.Round(time.Millisecond), oldRate)
	fmt.Printf("  Rebuild into an empty bucket                   %8s  %8.0f events/s  (%.1fx)\n",
		empty.Took.Round(time.Millisecond), empty.EventsPerSecond(), empty.EventsPerSecond()/oldRate)
	fmt.Printf("  Rebuild over a model already right             %8s  %8.0f events/s  (%.1fx)\n",
		again.Took.Round(time.Millisecond), again.EventsPerSecond(), again.EventsPerSecond()/oldRate)
}

// clearModel is what rebuild-projection did before Rebuild: the consumer
// deleted and every entry purged.
func clearModel(ctx context.Context, b *testing.B, js jetstream.JetStream) {
	b.Helper()
	workers, err := js.KeyValue(ctx, events.WorkersBucket)
	if err != nil {
		b.Fatal(err)
	}
	if err := workers.Purge(ctx, projection.LeaseKey); err != nil {
		b.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		b.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		b.Fatal(err)
	}
	for k := range keys.Keys() {
		if err := kv.Purge(ctx, k); err != nil {
			b.Fatal(err)
		}
	}
}

func runProjector(ctx context.Context, b *testing.B, js jetstream.JetStream, v events.SchemaValidator) func() {
	b.Helper()
	pctx, stop := context.WithCancel(ctx)
	p, err := projection.NewProjector(pctx, js, v, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = p.Run(pctx); close(done) }()
	return func() { stop(); <-done }
}

// awaitApplied waits until the read model holds the stream's last event,
// the last of workspace ws: the projection folds in stream order, so
// every event before it is folded too.
func awaitApplied(ctx context.Context, b *testing.B, js jetstream.JetStream, ws string, last uint64) {
	b.Helper()
	kv, err := js.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		b.Fatal(err)
	}
	for {
		if e, err := kv.Get(ctx, ws); err == nil {
			var w readmodel.Workspace
			if json.Unmarshal(e.Value(), &w) == nil && w.LastSeq >= last {
				return
			}
		}
		if ctx.Err() != nil {
			b.Fatal("the projection did not catch up")
		}
		time.Sleep(5 * time.Millisecond) // polling interval
	}
}
