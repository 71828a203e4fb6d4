package bus_test

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
)

func connect(t *testing.T, cfg bus.Config) *bus.Bus {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := bus.Connect(ctx, cfg, zap.NewNop())
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	if err := events.EnsureTopology(ctx, b.JS, events.TopologyConfig{}); err != nil {
		t.Fatalf("topology: %v", err)
	}
	return b
}

// TestEmbeddedStoreSurvivesRestart publishes through the real embedded
// server, checks de-duplication by id, restarts on the same directory and
// finds every message again; set-up run twice must not wipe anything.
func TestEmbeddedStoreSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	b := connect(t, bus.Config{DataDir: dir, Listen: "127.0.0.1:0"})
	if b.ClientURL() == "" || !b.Embedded() || !b.Healthy() {
		t.Fatalf("embedded server not listening: %q", b.ClientURL())
	}
	pub := events.NewPublisher(b.JS, v)
	env, _ := events.New("ws-a", &events.Create{PreferredName: "a", DefaultOwner: "u"}, events.Meta{Actor: "admin"})
	first, err := pub.Publish(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	again, err := pub.Publish(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	if first.Duplicate || !again.Duplicate || first.Stream != events.CommandsStream {
		t.Fatalf("dedup by Nats-Msg-Id failed: first %+v again %+v", first, again)
	}
	bad, _ := events.New("ws-a", &events.MemberAdd{Username: "u", Role: "root"}, events.Meta{Actor: "admin"})
	if _, err := pub.Publish(ctx, bad); err == nil {
		t.Fatal("publisher sent an event that breaks its schema")
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}

	b2 := connect(t, bus.Config{DataDir: dir})
	defer func() { _ = b2.Close(ctx) }()
	s, err := b2.JS.Stream(ctx, events.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("after restart the commands stream holds %d messages, want 1", info.State.Msgs)
	}
	msg, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	got, err := events.Parse(msg.Data, v)
	if err != nil || got.ID != env.ID || msg.Subject != "workspace.cmd.ws-a.create" {
		t.Fatalf("stored command %q %+v: %v", msg.Subject, got, err)
	}
	if msg.Header.Get("Nats-Msg-Id") != env.ID {
		t.Fatalf("Nats-Msg-Id %q, want the envelope id %q", msg.Header.Get("Nats-Msg-Id"), env.ID)
	}
}

func TestConfigValidate(t *testing.T) {
	if err := (bus.Config{}).Validate(); err == nil {
		t.Error("empty config accepted")
	}
	if err := (bus.Config{DataDir: "x", Listen: "nonsense"}).Validate(); err == nil {
		t.Error("bad listen address accepted")
	}
	if err := (bus.Config{URL: "nats://127.0.0.1:4222"}).Validate(); err != nil {
		t.Errorf("external URL rejected: %v", err)
	}
}
