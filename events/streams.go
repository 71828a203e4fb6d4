package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Stream names of the contract, plus the dead letters we keep for operators.
const (
	CommandsStream    = "WORKSPACE_COMMANDS"
	EventsStream      = "WORKSPACE_EVENTS"
	DeadLettersStream = "WORKSPACE_DEAD_LETTERS"
	// AdvisoriesStream keeps the server's max-deliveries advisories about
	// commands, so one sent while no worker listens is still acted on.
	AdvisoriesStream = "WORKSPACE_ADVISORIES"
)

// MaxDeliveriesAdvisories is the subject of the advisories, for every
// consumer of the commands stream, that a message ran out of deliveries.
const MaxDeliveriesAdvisories = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + CommandsStream + ".*"

// PartitionMaxDeliveriesAdvisories is the same for the partitions' consumers.
const PartitionMaxDeliveriesAdvisories = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES." + PartitionsStream + ".*"

// KV buckets: the read model, name reservations, idempotency answers,
// saga progress, encrypted secrets and share links.
const (
	ProjectionBucket  = "workspace_projection"
	NamesBucket       = "workspace_names"
	IdempotencyBucket = "workspace_idempotency"
	SagaBucket        = "workspace_sagas"
	SecretsBucket     = "workspace_secrets"
	SharesBucket      = "workspace_shares"
)

// SharesTTL is how long a share link's record outlives its last change:
// long past its 7 days at most, so ended links stay listed a while, then go.
const SharesTTL = 30 * 24 * time.Hour

// TopologyConfig sizes the streams; zero values take the defaults.
type TopologyConfig struct {
	Replicas int // 1 for a single server, 3 for a cluster
	// DuplicateWindow is how long JetStream remembers message ids to drop
	// a re-published command.
	DuplicateWindow time.Duration
	// IdempotencyTTL is how long an Idempotency-Key answers the same.
	IdempotencyTTL time.Duration
	// SetupTimeout bounds EnsureTopology's retries.
	SetupTimeout time.Duration
	// Partitions of the commands for the workers (PartitionsStream): 0
	// takes the stored count, or DefaultPartitions on a new deployment.
	Partitions int
}

// Defaults of TopologyConfig.
const (
	DefaultReplicas        = 1
	DefaultDuplicateWindow = 10 * time.Minute
	DefaultIdempotencyTTL  = 24 * time.Hour
	DefaultSetupTimeout    = 2 * time.Minute
	// setupAttempt bounds one attempt: a cluster that has not elected its
	// meta leader yet times out a request rather than refusing it, and of
	// processes creating the same stream at once, all but one may wait
	// for an answer that never comes. Each creation answers within a
	// second otherwise, so the next attempt comes soon.
	setupAttempt = 4 * time.Second
)

// WithDefaults fills the zero fields.
func (c TopologyConfig) WithDefaults() TopologyConfig {
	if c.Replicas == 0 {
		c.Replicas = DefaultReplicas
	}
	if c.DuplicateWindow == 0 {
		c.DuplicateWindow = DefaultDuplicateWindow
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = DefaultIdempotencyTTL
	}
	if c.SetupTimeout == 0 {
		c.SetupTimeout = DefaultSetupTimeout
	}
	return c
}

// Validate reports a configuration the server would refuse.
func (c TopologyConfig) Validate() error {
	if c.IdempotencyTTL < time.Second {
		return fmt.Errorf("idempotency ttl: %s is too short", c.IdempotencyTTL)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		return fmt.Errorf("replicas: %d is outside 1..5", c.Replicas)
	}
	if c.DuplicateWindow < time.Second {
		return fmt.Errorf("duplicate window: %s is too short", c.DuplicateWindow)
	}
	if c.Partitions < 0 || c.Partitions > MaxPartitions {
		return fmt.Errorf("partitions: %d is outside 1..%d (0: as stored)", c.Partitions, MaxPartitions)
	}
	if c.SetupTimeout < 0 {
		return fmt.Errorf("setup timeout: %s is negative", c.SetupTimeout)
	}
	return nil
}

// StreamConfigs returns the configuration of every stream we own.
func StreamConfigs(c TopologyConfig) []jetstream.StreamConfig {
	c = c.WithDefaults()
	base := func(name, desc string, subjects ...string) jetstream.StreamConfig {
		return jetstream.StreamConfig{
			Name:        name,
			Description: desc,
			Subjects:    subjects,
			Storage:     jetstream.FileStorage,
			Retention:   jetstream.LimitsPolicy,
			Replicas:    c.Replicas,
			Duplicates:  c.DuplicateWindow,
			// Never drop history: the streams are the audit trail.
			Discard: jetstream.DiscardNew,
		}
	}
	return []jetstream.StreamConfig{
		expiring(base(CommandsStream, "Workspace commands (create, delete, membership, retry)", CommandSubjectPrefix+">")),
		base(EventsStream, "Workspace status and domain events: the audit trail", EventSubjectPrefix+">"),
		base(DeadLettersStream, "Messages no handler could act on, with the reason", DeadLetterSubjectPrefix+">"),
		advisories(base(AdvisoriesStream, "Commands that ran out of deliveries, as the server's advisories say", MaxDeliveriesAdvisories,
			PartitionMaxDeliveriesAdvisories)),
	}
}

// expiring lets c keep a message for a time the publisher sets
// (Publisher.Expiring) instead of for good: the drift sweep's reconciles
// come every few minutes for every workspace. It can be turned on for a
// stream that exists, never off again.
func expiring(c jetstream.StreamConfig) jetstream.StreamConfig {
	c.AllowMsgTTL = true
	return c
}

// Limits of the advisories stream. An advisory is worth keeping until a
// worker has dead-lettered its command (seconds after a worker runs);
// what it points at is kept in the dead letters and the commands stream,
// so it is not audit history. A week covers a long holiday without any
// worker; the message cap bounds a storm of them. Older ones are dropped
// first: a new advisory must never be refused.
const (
	AdvisoriesMaxAge  = 7 * 24 * time.Hour
	AdvisoriesMaxMsgs = 1_000_000
)

func advisories(c jetstream.StreamConfig) jetstream.StreamConfig {
	c.MaxAge, c.MaxMsgs, c.Discard = AdvisoriesMaxAge, AdvisoriesMaxMsgs, jetstream.DiscardOld
	return c
}

// KVConfigs returns the configuration of every KV bucket we own.
func KVConfigs(c TopologyConfig) []jetstream.KeyValueConfig {
	c = c.WithDefaults()
	kv := func(name, desc string, ttl time.Duration, history uint8) jetstream.KeyValueConfig {
		return jetstream.KeyValueConfig{
			Bucket:      name,
			Description: desc,
			Storage:     jetstream.FileStorage,
			Replicas:    c.Replicas,
			TTL:         ttl,
			History:     history,
		}
	}
	return []jetstream.KeyValueConfig{
		kv(ProjectionBucket, "Workspace read model, one key per workspace", 0, 1),
		kv(NamesBucket, "Workspace name reservations", 0, 1),
		kv(IdempotencyBucket, "Answers to requests by Idempotency-Key", c.IdempotencyTTL, 1),
		kv(SagaBucket, "Saga progress, one key per workspace", 0, 1),
		kv(SecretsBucket, "Workspace credentials, encrypted", 0, 1),
		kv(WorkersBucket, "Live workers, which owns which command partition, and the projection's lease", 0, 1),
		kv(SharesBucket, "Share links, one key per link (workspace.id), secrets hashed", SharesTTL, 1),
	}
}

// EnsureTopology creates or updates every stream and KV bucket. It never
// deletes or purges: running it at every start-up is safe. It retries for
// up to SetupTimeout: processes started together on a fresh cluster
// create the same streams at once, and a cluster still electing its leader
// times requests out; both settle within seconds.
func EnsureTopology(ctx context.Context, js jetstream.JetStream, c TopologyConfig) error {
	c = c.WithDefaults()
	if err := c.Validate(); err != nil {
		return fmt.Errorf("topology config: %w", err)
	}
	b := backoff.NewExponentialBackOff(backoff.WithInitialInterval(100*time.Millisecond),
		backoff.WithMaxInterval(2*time.Second), backoff.WithMaxElapsedTime(c.SetupTimeout))
	return backoff.Retry(func() error {
		actx, cancel := context.WithTimeout(ctx, setupAttempt)
		defer cancel()
		return ensureOnce(actx, js, c)
	}, backoff.WithContext(b, ctx))
}

func ensureOnce(ctx context.Context, js jetstream.JetStream, c TopologyConfig) error {
	for _, sc := range StreamConfigs(c) {
		if _, err := js.CreateOrUpdateStream(ctx, sc); err != nil {
			return fmt.Errorf("ensure stream %s: %w", sc.Name, err)
		}
	}
	if err := ensurePartitions(ctx, js, c); err != nil {
		return err
	}
	for _, kc := range KVConfigs(c) {
		if err := ensureKV(ctx, js, kc); err != nil {
			return fmt.Errorf("ensure kv bucket %s: %w", kc.Bucket, err)
		}
	}
	return nil
}

// IsNotFound reports whether err means a key or message does not exist.
func IsNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrMsgNotFound) ||
		errors.Is(err, jetstream.ErrKeyDeleted)
}

// IsNoAnswer reports whether err means a request to the bus got no
// answer: lost with the connection to a server that died, timed out, or
// no server to take it yet (a leader election). Reads, and writes that
// are safe to repeat (a publish with its message id), may be tried again.
func IsNoAnswer(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrNoStreamResponse)
}

// IsConflict reports whether err means a KV compare-and-set lost: Create
// found the key (ErrKeyExists) or Update found another revision
// (ErrKeyRevisionMismatch). nats.go documents ErrKeyRevisionMismatch for
// Update on every bucket; ErrKeyExists matches error code 10071 only, the
// code of a single-replica stream, while a replicated one reports 10164,
// so both codes are checked as well, whichever call returned them.
func IsConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) ||
		(errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
			apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant))
}
