package worker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
	"github.com/eo-workspaces/provisioner/sagas/progress"
	"github.com/eo-workspaces/provisioner/sagas/shares"
)

// ConsumerName names the partitions' durable consumers (worker-p<N>); it
// was the one shared consumer on WORKSPACE_COMMANDS of earlier versions,
// which a worker drains and deletes when it finds it.
const ConsumerName = "worker"

// Config tunes the worker; zero values take the defaults.
type Config struct {
	Concurrency     int           // lifecycle sagas (create, delete, retry) running at once (8)
	SideConcurrency int           // side sagas (membership, keys, quota) at once, in slots of their own (Concurrency)
	MaxRetryElapsed time.Duration // in-place retries of a transient error before failed (5m)
	AckWait         time.Duration // held messages heart-beaten every third; a dead worker's come back after it (10s)
	WorkerID        string        // lease owner; stable across restarts if set (hostname-random)
	Endpoint        string        // S3 endpoint reported in the storage block (required)
	Region          string        // S3 region (us-east-1)
	LeaseTTL        time.Duration // saga lease, renewed every third (30s)
	MaxDeliver      int           // deliveries before the max-deliveries dead letter (20)
	MaxAckPending   int           // commands held at once, queued or running (1000)
	NakDelay        time.Duration // redelivery delay when busy elsewhere or the bus fails (5s)
	RetryInitial    time.Duration // first in-place backoff (250ms)
	RetryMax        time.Duration // longest in-place backoff (15s)
	StepTimeout     time.Duration // one attempt of a step; bounds a graceful stop (1m)
	SampleEvery     time.Duration // the consumer's pending count sampled for the metrics (5s)
	NameHold        time.Duration // a deleted workspace's name is held (30 days); negative: freed at once
	// ReconcileInterval is how often the drift sweep reconciles every ready
	// or degraded workspace (10m); negative: never.
	ReconcileInterval time.Duration
	// ReconcileKeep is how long the commands stream keeps a reconcile the
	// sweep published (24h); negative: for good, like any command.
	ReconcileKeep time.Duration
}

// Defaults of Config; the saga engine's are sagas.Default*.
const (
	DefaultConcurrency   = 8
	DefaultMaxDeliver    = 20
	DefaultMaxAckPending = 1000
	DefaultAckWait       = 10 * time.Second
	DefaultNakDelay      = 5 * time.Second
	// Often enough for a dashboard; one small request per worker.
	DefaultSampleEvery = 5 * time.Second
	DefaultNameHold    = 30 * 24 * time.Hour
)

// WithDefaults fills the zero fields.
func (c Config) WithDefaults() Config {
	if c.Concurrency == 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.SideConcurrency == 0 {
		c.SideConcurrency = c.Concurrency
	}
	if c.MaxDeliver == 0 {
		c.MaxDeliver = DefaultMaxDeliver
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = DefaultMaxAckPending
	}
	if c.Region == "" {
		c.Region = objectstore.DefaultRegion
	}
	if c.WorkerID == "" {
		c.WorkerID = defaultWorkerID()
	}
	if c.AckWait == 0 {
		c.AckWait = DefaultAckWait
	}
	if c.NakDelay == 0 {
		c.NakDelay = DefaultNakDelay
	}
	if c.SampleEvery == 0 {
		c.SampleEvery = DefaultSampleEvery
	}
	if c.NameHold == 0 {
		c.NameHold = DefaultNameHold
	}
	if c.ReconcileInterval == 0 {
		c.ReconcileInterval = DefaultReconcileInterval
	}
	if c.ReconcileKeep == 0 {
		c.ReconcileKeep = DefaultReconcileKeep
	}
	// The saga engine's settings default where the engine defines them.
	e := c.engineConfig().WithDefaults()
	c.LeaseTTL, c.MaxRetryElapsed, c.StepTimeout = e.LeaseTTL, e.MaxRetryElapsed, e.StepTimeout
	c.RetryInitial, c.RetryMax = e.RetryInitial, e.RetryMax
	return c
}

// Validate names the first field that cannot work.
func (c Config) Validate() error {
	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("concurrency: %d must be at least 1", c.Concurrency)
	case c.SideConcurrency < 1:
		return fmt.Errorf("side concurrency: %d must be at least 1", c.SideConcurrency)
	case !validWorkerID(c.WorkerID):
		return fmt.Errorf("worker id: %q cannot name a key (no spaces, '*', '>' or leading/trailing '.')", c.WorkerID)
	case c.Endpoint == "":
		return errors.New("endpoint: the S3 endpoint reported to clients is required")
	case c.AckWait < time.Second:
		return fmt.Errorf("ack wait: %s is shorter than a second", c.AckWait)
	case c.MaxDeliver < 2:
		return fmt.Errorf("max deliver: %d must be at least 2", c.MaxDeliver)
	case c.MaxAckPending < c.Concurrency+c.SideConcurrency:
		return fmt.Errorf("max ack pending: %d is below the concurrency %d plus the side concurrency %d", c.MaxAckPending, c.Concurrency, c.SideConcurrency)
	case c.NakDelay <= 0:
		return fmt.Errorf("nak delay: %s must be positive", c.NakDelay)
	case c.SampleEvery <= 0:
		return fmt.Errorf("sample every: %s must be positive", c.SampleEvery)
	case c.ReconcileInterval > 0 && c.ReconcileInterval < 100*time.Millisecond:
		return fmt.Errorf("reconcile interval: %s is too short (negative disables the sweep)", c.ReconcileInterval)
	case c.ReconcileKeep > 0 && c.ReconcileKeep < time.Second:
		return fmt.Errorf("reconcile keep: %s is shorter than the server's one second (negative keeps them for good)", c.ReconcileKeep)
	}
	return c.engineConfig().Validate()
}

func (c Config) engineConfig() sagas.EngineConfig {
	return sagas.EngineConfig{WorkerID: c.WorkerID, LeaseTTL: c.LeaseTTL, MaxRetryElapsed: c.MaxRetryElapsed,
		RetryInitial: c.RetryInitial, RetryMax: c.RetryMax, StepTimeout: c.StepTimeout}
}

func defaultWorkerID() string {
	host, _ := os.Hostname()
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	if host == "" {
		host = "worker"
	}
	return host + "-" + hex.EncodeToString(b)
}

// Deps are the worker's collaborators.
type Deps struct {
	JS        jetstream.JetStream
	Publisher sagas.EventPublisher
	Schema    events.SchemaValidator
	Identity  sagas.Identity
	Store     sagas.ObjectStore
	Secrets   sagas.Vault
	Log       *zap.Logger
	Metrics   prometheus.Registerer // nil: none exported
}

// Worker consumes commands. See Run.
type Worker struct {
	cfg     Config
	deps    Deps
	log     *zap.Logger
	metrics *metrics
	drift   *driftMetrics
	ready   chan struct{}
	once    sync.Once
}

// New checks the configuration and dependencies.
func New(cfg Config, deps Deps) (*Worker, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("worker config: %w", err)
	}
	if deps.JS == nil || deps.Publisher == nil || deps.Schema == nil || deps.Identity == nil ||
		deps.Store == nil || deps.Secrets == nil {
		return nil, errors.New("worker: JS, Publisher, Schema, Identity, Store and Secrets are required")
	}
	log := deps.Log
	if log == nil {
		log = zap.NewNop()
	}
	m, err := newMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	dm, err := newDriftMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	return &Worker{cfg: cfg, deps: deps, log: log.With(zap.String("worker_id", cfg.WorkerID)), metrics: m, drift: dm,
		ready: make(chan struct{})}, nil
}

// Ready is closed once the worker consumes.
func (w *Worker) Ready() <-chan struct{} { return w.ready }

// ID is the worker's lease owner id.
func (w *Worker) ID() string { return w.cfg.WorkerID }

// Run consumes until ctx ends, then stops taking messages and returns
// once every saga in flight reached a step boundary (bounded by
// Config.StepTimeout); what was not finished is redelivered.
//
// How a message's fate is decided, and why:
//   - Each message goes to its workspace's FIFO queue, drained by one
//     goroutine; a semaphore bounds how many sagas run at once. So one
//     workspace's commands apply one at a time, in stream order (a delete
//     that arrives while the create runs waits behind it, then undoes it),
//     and different workspaces proceed in parallel.
//   - Transient provider errors are retried in place by the saga engine
//     (exponential backoff with jitter, up to MaxRetryElapsed), never
//     Nak'd: a Nak'd command would be overtaken by the next one of its
//     workspace. Every held message, queued or running, is heart-beaten
//     with InProgress so AckWait does not expire while it waits.
//   - settle is the one function that maps the outcome to Ack, Nak or Term.
//     Once a message goes back to the stream (Nak), every message queued
//     behind it for the same workspace goes back too, so none overtakes it.
//   - Several workers share the commands by partition (see partitions.go):
//     each partition, a hash of the workspace, is consumed by one worker
//     at a time, so a workspace's commands apply in publish order across
//     workers too. The lease in the saga record (worker id, expiry; taken
//     by compare-and-set, renewed while running) stays as a second guard:
//     a command for a workspace leased by another live worker is Nak'd
//     with a delay.
func (w *Worker) Run(ctx context.Context) error {
	commands, err := w.commandHandler(ctx)
	if err != nil {
		return err
	}
	parts, err := w.newPartitions(ctx)
	if err != nil {
		return err
	}
	stopAdvisories, err := w.watchMaxDeliveries(ctx)
	if err != nil {
		return err
	}
	defer stopAdvisories()
	defer parts.samplePending(ctx)()
	if err := w.migrate(ctx); err != nil {
		return err
	}
	stopSweepers, err := w.runSweepers(ctx)
	if err != nil {
		return err
	}
	defer stopSweepers()
	stopSweep, err := w.sweepDrift(ctx)
	if err != nil {
		return err
	}
	defer stopSweep()
	d := newDispatcher(w.cfg.Concurrency, w.cfg.SideConcurrency, func(ctx context.Context, msg jetstream.Msg) error {
		return w.process(ctx, commands, msg)
	}, w.settle)
	d.blockFor = w.cfg.AckWait + 2*w.cfg.NakDelay
	stopBeat := d.heartbeat(w.cfg.AckWait/3, w.log)
	defer stopBeat()
	w.once.Do(func() { close(w.ready) })
	w.log.Info("worker consuming", zap.String("stream", events.PartitionsStream), zap.Int("partitions", parts.n),
		zap.Int("concurrency", w.cfg.Concurrency))
	parts.run(ctx, d)
	return nil
}

func (w *Worker) consume(ctx context.Context, it jetstream.MessagesContext, d *dispatcher) error {
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, jetstream.ErrMsgIteratorClosed) {
				return nil
			}
			return fmt.Errorf("worker next: %w", err)
		}
		d.dispatch(ctx, workspaceKey(msg.Subject()), msg)
	}
}

// workspaceKey is the queue a message joins; a subject that names no
// workspace still gets a queue, and is rejected when handled.
func workspaceKey(subject string) string {
	if ws := events.WorkspaceFromSubject(subject); ws != "" {
		return ws
	}
	return "\x00" + subject
}

func (w *Worker) consumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       ConsumerName,
		Description:   "Drives workspace sagas from commands",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       w.cfg.AckWait,
		MaxDeliver:    w.cfg.MaxDeliver,
		MaxAckPending: w.cfg.MaxAckPending,
		FilterSubject: events.CommandSubjectPrefix + ">",
	}
}

// migrate asks for the migration of every workspace an older version
// made, before the worker takes commands (the commands queue behind it).
func (w *Worker) migrate(ctx context.Context) error {
	sagaKV, err := w.deps.JS.KeyValue(ctx, events.SagaBucket)
	if err != nil {
		return fmt.Errorf("saga bucket: %w", err)
	}
	store := progress.NewKV(sagaKV)
	n, err := sagas.MigrateAll(ctx, store, store, w.deps.Publisher, w.log.Named("migration"))
	if err != nil {
		return fmt.Errorf("migration to per-member keys: %w", err)
	}
	if n > 0 {
		w.log.Info("migration: workspaces to move to per-member keys", zap.Int("count", n))
	}
	return nil
}

// runSweepers runs the Retirer of old key pairs, the Issuer of new members'
// pairs and the Expiry of name holds until the returned stop.
func (w *Worker) runSweepers(ctx context.Context) (stop func(), err error) {
	namesKV, err := w.deps.JS.KeyValue(ctx, events.NamesBucket)
	if err != nil {
		return nil, fmt.Errorf("names bucket: %w", err)
	}
	exp, err := names.NewExpiry(names.NewKV(namesKV), w.deps.Publisher, w.log.Named("names"), 0)
	if err != nil {
		return nil, err
	}
	r, err := sagas.NewRetirer(sagas.Ports{Store: w.deps.Store, Vault: w.deps.Secrets, Events: w.deps.Publisher,
		Log: w.log.Named("retirer")}, 0)
	if err != nil {
		return nil, err
	}
	is, err := sagas.NewIssuer(sagas.Ports{Store: w.deps.Store, Vault: w.deps.Secrets, Events: w.deps.Publisher,
		Log: w.log.Named("issuer")}, 0)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	// They end only with ctx; failed sweeps are logged and tried again.
	wg.Go(func() { _ = r.Run(ctx) })
	wg.Go(func() { _ = is.Run(ctx) })
	wg.Go(func() { _ = exp.Run(ctx) })
	return func() { cancel(); wg.Wait() }, nil
}

// commandHandler plugs the worker's adapters into the saga application.
func (w *Worker) commandHandler(ctx context.Context) (*sagas.CommandHandler, error) {
	sagaKV, err := w.deps.JS.KeyValue(ctx, events.SagaBucket)
	if err != nil {
		return nil, fmt.Errorf("saga bucket: %w", err)
	}
	namesKV, err := w.deps.JS.KeyValue(ctx, events.NamesBucket)
	if err != nil {
		return nil, fmt.Errorf("names bucket: %w", err)
	}
	sharesKV, err := w.deps.JS.KeyValue(ctx, events.SharesBucket)
	if err != nil {
		return nil, fmt.Errorf("shares bucket: %w", err)
	}
	ec := w.cfg.engineConfig()
	ec.ObserveStep = w.metrics.observeStep
	ec.ObserveRetry = w.metrics.observeRetry
	ec.ObserveRun = w.metrics.observeRun
	return sagas.NewApplication(sagas.AppConfig{Engine: ec, Endpoint: w.cfg.Endpoint, Region: w.cfg.Region,
		NameHold: max(w.cfg.NameHold, 0), ObserveDrift: w.drift.observeDrift}, sagas.Ports{
		Progress: progress.NewKV(sagaKV), Events: w.deps.Publisher, Identity: w.deps.Identity, Store: w.deps.Store,
		Vault: w.deps.Secrets, Names: names.NewKV(namesKV), Shares: shares.NewKV(sharesKV), Log: w.log,
	})
}
