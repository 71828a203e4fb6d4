package events_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
)

// A partition count other than the stored one is refused with both named;
// leaving it unset takes the stored one.
func TestPartitionCountMismatchIsRefused(t *testing.T) {
	b := bustest.Start(t)
	ctx := context.Background()
	err := events.EnsureTopology(ctx, b.JS, events.TopologyConfig{Partitions: 8})
	var mismatch *events.PartitionMismatchError
	if !errors.As(err, &mismatch) || mismatch.Stored != events.DefaultPartitions || mismatch.Configured != 8 {
		t.Fatalf("err %v, want a mismatch of 8 against %d", err, events.DefaultPartitions)
	}
	if err := events.EnsureTopology(ctx, b.JS, events.TopologyConfig{}); err != nil {
		t.Fatalf("unset count: %v", err)
	}
}

// The server's transform and PartitionOf agree on a workspace's partition,
// and the partitioned subject maps back to the one published.
func TestPartitionOfMatchesTheServer(t *testing.T) {
	b := bustest.Start(t)
	ctx := context.Background()
	for _, ws := range []string{"ws-a", "ws-team-b", "ws-c1", "ws-dd", "ws-e"} {
		if _, err := b.JS.Publish(ctx, events.CommandSubjectPrefix+ws+".member.add", nil); err != nil {
			t.Fatal(err)
		}
	}
	s, err := b.JS.Stream(ctx, events.PartitionsStream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 5; seq++ {
		raw, err := sourced(ctx, s, seq)
		if err != nil {
			t.Fatal(err)
		}
		orig, p, ok := events.PartitionOfSubject(raw)
		ws := events.WorkspaceFromSubject(orig)
		if !ok || p != events.PartitionOf(ws, events.DefaultPartitions) || orig != events.CommandSubjectPrefix+ws+".member.add" {
			t.Errorf("stored %s: partition %d, %s", raw, p, orig)
		}
	}
}

// sourced waits for message seq of the partitions stream and returns its
// subject.
func sourced(ctx context.Context, s jetstream.Stream, seq uint64) (string, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		m, err := s.GetMsg(ctx, seq)
		if err == nil {
			return m.Subject, nil
		}
		if !events.IsNotFound(err) || time.Now().After(deadline) {
			return "", err
		}
		time.Sleep(10 * time.Millisecond)
	}
}
