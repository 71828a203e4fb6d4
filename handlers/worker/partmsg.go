package worker

import (
	"strconv"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
)

// partMsg is a message of the partitioned stream as the rest of the worker
// sees it: on the subject it was published on, with the sequence it has in
// WORKSPACE_COMMANDS (dead letters point there, and the dispatcher tells
// redeliveries by it). Acks go to the partition's consumer as they are.
type partMsg struct {
	jetstream.Msg
	subject   string
	partition int
	seq       uint64 // in WORKSPACE_COMMANDS; 0 if the source header is missing
}

func wrapPartition(m jetstream.Msg) jetstream.Msg {
	subject, p, ok := events.PartitionOfSubject(m.Subject())
	if !ok {
		return m
	}
	return &partMsg{Msg: m, subject: subject, partition: p, seq: sourceSeq(m.Headers().Get(streamSourceHeader))}
}

func (m *partMsg) Subject() string { return m.subject }

func (m *partMsg) Metadata() (*jetstream.MsgMetadata, error) {
	meta, err := m.Msg.Metadata()
	if err != nil || m.seq == 0 {
		return meta, err
	}
	c := *meta
	c.Stream, c.Sequence.Stream = events.CommandsStream, m.seq
	return &c, nil
}

// streamSourceHeader is set by the server on every sourced message.
const streamSourceHeader = "Nats-Stream-Source"

// sourceSeq reads the origin sequence from a sourced message's header:
// "<stream> <seq> <filter> <transform> <subject>".
func sourceSeq(h string) uint64 {
	f := strings.Fields(h)
	if len(f) < 2 || f[0] != events.CommandsStream {
		return 0
	}
	n, _ := strconv.ParseUint(f[1], 10, 64)
	return n
}

// partitionOf is the partition a held message came from, or -1.
func partitionOf(m jetstream.Msg) int {
	if pm, ok := m.(*partMsg); ok {
		return pm.partition
	}
	return -1
}
