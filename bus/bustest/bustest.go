package bustest

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/events"
)

// Start connects to a new in-process server whose store lives in a
// temporary directory of tb.
func Start(tb testing.TB) *bus.Bus {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{DataDir: tb.TempDir()}, zap.NewNop())
	if err != nil {
		tb.Fatalf("embedded nats: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close(context.Background()) })
	if err := events.EnsureTopology(ctx, b.JS, events.TopologyConfig{}); err != nil {
		tb.Fatalf("topology: %v", err)
	}
	return b
}
