package events

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"regexp"
	"strconv"
	"strings"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go/jetstream"
)

// The commands, partitioned by workspace for the workers. WORKSPACE_COMMANDS
// keeps the contract's subjects untouched (the audit trail and what outside
// readers filter on); this work-queue stream sources it through a subject
// transform that puts a partition token, a hash of the workspace, in front:
// workspace.cmd.<ws>.<command> becomes workspace.part.<p>.<ws>.<command>.
// One durable consumer per partition, each consumed by one worker at a time,
// keeps a workspace's commands in publish order across any number of workers.
const (
	PartitionsStream       = "WORKSPACE_COMMAND_PARTITIONS"
	PartitionSubjectPrefix = "workspace.part."
	// WorkersBucket holds the workers' membership, which worker owns
	// which partition, and the projection's lease and checkpoint.
	WorkersBucket = "workspace_workers"
	// DefaultPartitions bounds how many workers share the commands; a
	// partition is the unit of order and of hand-over.
	DefaultPartitions = 16
	// MaxPartitions keeps the per-partition consumers within reason.
	MaxPartitions = 1024
)

// PartitionMismatchError says the configured partition count is not the
// one the deployment was set up with; the transform hashes workspaces by
// it, so every process must use the same.
type PartitionMismatchError struct {
	Configured, Stored int
}

func (e *PartitionMismatchError) Error() string {
	return fmt.Sprintf("partitions: configured %d but stream %s was set up with %d; use %d (or leave it unset), "+
		"or recreate the stream while no command is pending", e.Configured, PartitionsStream, e.Stored, e.Stored)
}

// PartitionStreamConfig is the partitioned stream for n partitions, sourcing
// the commands from stream sequence startSeq on (the ones before belong to
// the consumer of an earlier version, which drains them).
func PartitionStreamConfig(n, replicas int, startSeq uint64) jetstream.StreamConfig {
	part := PartitionSubjectPrefix + "{{partition(" + strconv.Itoa(n) + ",1)}}."
	return jetstream.StreamConfig{
		Name:        PartitionsStream,
		Description: "Workspace commands by partition, for the workers (sourced from " + CommandsStream + ")",
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Replicas:    replicas,
		Sources: []*jetstream.StreamSource{{
			Name:        CommandsStream,
			OptStartSeq: startSeq,
			SubjectTransforms: []jetstream.SubjectTransformConfig{
				{Source: CommandSubjectPrefix + "*.>", Destination: part + "{{wildcard(1)}}.>"},
				// A subject naming no command still reaches a worker, which
				// dead-letters it with the reason.
				{Source: CommandSubjectPrefix + "*", Destination: PartitionSubjectPrefix + "0.{{wildcard(1)}}"},
			},
		}},
	}
}

var partitionCountRE = regexp.MustCompile(`\{\{partition\((\d+),1\)\}\}`)

// PartitionCount reads the partition count from the partitioned stream's
// configuration.
func PartitionCount(cfg jetstream.StreamConfig) (int, error) {
	for _, src := range cfg.Sources {
		for _, tr := range src.SubjectTransforms {
			if m := partitionCountRE.FindStringSubmatch(tr.Destination); m != nil {
				return strconv.Atoi(m[1])
			}
		}
	}
	return 0, fmt.Errorf("stream %s has no partition transform", cfg.Name)
}

// PartitionStart is the first commands-stream sequence the partitioned
// stream sources; the ones before are an earlier version's to drain.
func PartitionStart(cfg jetstream.StreamConfig) uint64 {
	for _, src := range cfg.Sources {
		if src.Name == CommandsStream {
			return max(src.OptStartSeq, 1)
		}
	}
	return 1
}

// PartitionOfSubject maps a partitioned subject back to the command subject
// it was published on, and its partition.
func PartitionOfSubject(subject string) (command string, partition int, ok bool) {
	rest, found := strings.CutPrefix(subject, PartitionSubjectPrefix)
	if !found {
		return "", 0, false
	}
	p, tail, found := strings.Cut(rest, ".")
	n, err := strconv.Atoi(p)
	if !found || err != nil {
		return "", 0, false
	}
	return CommandSubjectPrefix + tail, n, true
}

// PartitionOf is the partition of workspace ws among n, as the server's
// transform computes it (FNV-1a, 32 bits, modulo n).
func PartitionOf(ws string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(ws))
	return int(h.Sum32() % uint32(n))
}

// PartitionSubjectFilter is the filter of partition p's consumer.
func PartitionSubjectFilter(p int) string {
	return PartitionSubjectPrefix + strconv.Itoa(p) + ".>"
}

// ensurePartitions creates the partitioned stream if it is missing,
// sourcing from the next command on, and otherwise refuses a partition
// count other than the stored one. It never updates the stream: its
// start sequence and count must stay what the first process chose.
func ensurePartitions(ctx context.Context, js jetstream.JetStream, c TopologyConfig) error {
	s, err := js.Stream(ctx, PartitionsStream)
	if err == nil {
		stored, err := PartitionCount(s.CachedInfo().Config)
		if err != nil {
			return backoff.Permanent(err)
		}
		if c.Partitions != 0 && c.Partitions != stored {
			return backoff.Permanent(&PartitionMismatchError{Configured: c.Partitions, Stored: stored})
		}
		return nil
	}
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		return fmt.Errorf("stream %s: %w", PartitionsStream, err)
	}
	cmds, err := js.Stream(ctx, CommandsStream)
	if err != nil {
		return fmt.Errorf("stream %s: %w", CommandsStream, err)
	}
	n := c.Partitions
	if n == 0 {
		n = DefaultPartitions
	}
	// A command published after this read is both sourced and seen by an
	// earlier version's consumer; that consumer's drain skips it.
	start := cmds.CachedInfo().State.LastSeq + 1
	if _, err := js.CreateStream(ctx, PartitionStreamConfig(n, c.Replicas, start)); err != nil {
		// Another process may have created it first: the retry compares.
		return fmt.Errorf("create stream %s: %w", PartitionsStream, err)
	}
	return nil
}
