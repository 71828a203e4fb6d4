package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
)

// A command published through Publisher.Expiring leaves the commands
// stream after its time; one published plainly stays, as every command
// did before.
func TestExpiringCommandsLeaveTheStreamAndOthersStay(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := bustest.Start(t)
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(b.JS, v)
	kept, _ := events.New("ws-ttl", &events.Reconcile{}, events.Meta{Actor: "t"})
	gone, _ := events.New("ws-ttl", &events.Reconcile{}, events.Meta{Actor: "t"})
	keptAt, err := pub.Publish(ctx, kept)
	if err != nil {
		t.Fatal(err)
	}
	goneAt, err := pub.Expiring(time.Second).Publish(ctx, gone)
	if err != nil {
		t.Fatal(err)
	}
	s, err := b.JS.Stream(ctx, events.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, goneAt.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Header.Get(jetstream.MsgTTLHeader); got != "1s" {
		t.Errorf("expiring command's %s header %q, want 1s", jetstream.MsgTTLHeader, got)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := s.GetMsg(ctx, goneAt.Sequence)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the expiring command is still there 20s later (%v)", err)
		}
		time.Sleep(100 * time.Millisecond) // polling: the server expires it on its own clock
	}
	if _, err := s.GetMsg(ctx, keptAt.Sequence); err != nil {
		t.Fatalf("the plain command went too: %v", err)
	}
}

// A commands stream made before commands could expire is updated in
// place when a new version sets the topology up.
func TestTheCommandsStreamOfAnOlderVersionGetsExpiringCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b, err := bus.Connect(ctx, bus.Config{DataDir: t.TempDir()}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close(context.Background()) })
	js := b.JS
	for _, c := range events.StreamConfigs(events.TopologyConfig{}) {
		if c.Name == events.CommandsStream {
			c.AllowMsgTTL = false
			if _, err := js.CreateStream(ctx, c); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := events.EnsureTopology(ctx, js, events.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, events.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	if !s.CachedInfo().Config.AllowMsgTTL {
		t.Fatal("the commands stream still refuses expiring messages")
	}
}
