package projection_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/projection"
	"github.com/eo-workspaces/provisioner/schemas"
)

// TestLagMetrics keeps the projection from applying (its bucket is gone)
// so the lag shows every event, then lets it catch up: the lag falls to
// zero and the last applied sequence reaches the stream's last.
func TestLagMetrics(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := bustest.Start(t)
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(b.JS, v)
	const n = 30
	for i := range n {
		env, _ := events.New(fmt.Sprintf("ws-lag%d", i), &events.StatusChanged{Status: events.StatusProvisioning, Owner: "alice"}, events.Meta{Actor: "t"})
		if _, err := pub.Publish(ctx, env); err != nil {
			t.Fatal(err)
		}
	}
	p, err := projection.NewProjector(ctx, b.JS, v, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	if err := p.RegisterMetrics(reg); err != nil {
		t.Fatal(err)
	}
	projection.SetSampleEvery(p, 20*time.Millisecond)
	if err := b.JS.DeleteKeyValue(ctx, events.ProjectionBucket); err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(rctx) }()
	defer func() { stop(); <-done }()

	gauge := func(name string) float64 {
		return gaugeValue(t, reg, name)
	}
	waitUntil(t, "the lag shows every event", func() bool { return gauge("workspace_projection_lag_events") == n })
	if _, err := b.JS.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: events.ProjectionBucket}); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the projection caught up", func() bool {
		return gauge("workspace_projection_lag_events") == 0 && gauge("workspace_projection_last_applied_sequence") == n
	})
	if d := gauge("workspace_projection_delay_seconds"); d <= 0 {
		t.Errorf("delay %v, want the time from stored to applied", d)
	}
	if g := gauge("workspace_projection_leader"); g != 1 {
		t.Errorf("leader gauge %v while folding, want 1", g)
	}
	if c, err := testutil.GatherAndCount(reg); err != nil || c != 4 {
		t.Errorf("%d series (%v), want 4", c, err)
	}
}

func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no gauge %s", name)
	return 0
}

// waitUntil polls cond until it holds, failing the test after 30 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
