package worker_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/progress"
	"github.com/eo-workspaces/provisioner/sagas/sagatest"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
	"github.com/eo-workspaces/provisioner/schemas"
)

const owner = "example-user-1"

type harness struct {
	t        *testing.T
	js       jetstream.JetStream
	pub      *events.Publisher
	schema   *schemas.Validator
	prov     *sagatest.Providers
	identity sagas.Identity    // prov unless a test sets a real adapter
	store    sagas.ObjectStore // prov unless a test sets a real adapter
	vault    *secrets.Store
	progress *progress.KV
	log      *zap.Logger
	metrics  prometheus.Registerer // nil unless a test reads metrics
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessOn(t, bustest.Start(t).JS)
}

// newHarnessOn is newHarness on a server or cluster of the caller's, its
// topology set up.
func newHarnessOn(t *testing.T, js jetstream.JetStream) *harness {
	t.Helper()
	ctx := context.Background()
	schema, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	secKV, _ := js.KeyValue(ctx, events.SecretsBucket)
	vault, err := secrets.New(secKV, secrets.Config{Key: secrets.KeyFromPassphrase("test")})
	if err != nil {
		t.Fatal(err)
	}
	sagaKV, _ := js.KeyValue(ctx, events.SagaBucket)
	prov := sagatest.New(owner)
	return &harness{t: t, js: js, pub: events.NewPublisher(js, schema), schema: schema, prov: prov, identity: prov,
		store: prov, vault: vault, progress: progress.NewKV(sagaKV), log: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
}

func testConfig(id string) worker.Config {
	return worker.Config{Concurrency: 4, WorkerID: id, Endpoint: "http://127.0.0.1:9000", AckWait: 2 * time.Second,
		LeaseTTL: 3 * time.Second, NakDelay: 100 * time.Millisecond, MaxRetryElapsed: 2 * time.Second,
		RetryInitial: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, StepTimeout: 5 * time.Second,
		// No drift sweep at a ten-minute boundary amid a test's counts;
		// the sweep's own tests set an interval.
		ReconcileInterval: -1}
}

// start runs a worker until the returned stop is called (or the test ends).
func (h *harness) start(cfg worker.Config) (stop func() error) {
	h.t.Helper()
	w, err := worker.New(cfg, worker.Deps{JS: h.js, Publisher: h.pub, Schema: h.schema, Identity: h.identity,
		Store: h.store, Secrets: h.vault, Log: h.log, Metrics: h.metrics})
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	select {
	case <-w.Ready():
	case err := <-done:
		h.t.Fatalf("worker stopped at start: %v", err)
	}
	var once sync.Once
	var runErr error
	stop = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	h.t.Cleanup(func() { _ = stop() })
	return stop
}

func (h *harness) send(env events.Envelope) {
	h.t.Helper()
	if _, err := h.pub.Publish(context.Background(), env); err != nil {
		h.t.Fatal(err)
	}
}

func command(t *testing.T, ws string, p events.Payload) events.Envelope {
	t.Helper()
	env, err := events.New(ws, p, events.Meta{Actor: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func create(t *testing.T, ws string) events.Envelope {
	return command(t, ws, &events.Create{PreferredName: strings.TrimPrefix(ws, "ws-"), DefaultOwner: owner})
}

// waitFor polls cond until it holds or the deadline passes.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	h.waitForWithin(20*time.Second, what, cond)
}

func (h *harness) waitForWithin(limit time.Duration, what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (h *harness) status(ws string) string {
	r, _, err := h.progress.Load(context.Background(), ws)
	if err != nil {
		h.t.Fatal(err)
	}
	return r.Status
}

// settled reports whether every command sourced into the partitions was
// delivered and acknowledged, none redelivered.
func (h *harness) settled() bool {
	ctx := context.Background()
	cmds, err := h.js.Stream(ctx, events.CommandsStream)
	if err != nil {
		return false
	}
	parts, err := h.js.Stream(ctx, events.PartitionsStream)
	if err != nil {
		return false
	}
	pi, err := parts.Info(ctx)
	if err != nil || pi.State.Msgs != 0 || len(pi.Sources) != 1 || pi.Sources[0].Lag != 0 ||
		cmds.CachedInfo().State.LastSeq == 0 {
		return false
	}
	for c := range parts.ListConsumers(ctx).Info() {
		if c.NumPending != 0 || c.NumAckPending != 0 || c.NumRedelivered != 0 {
			return false
		}
	}
	return true
}

// partitionConsumer is the consumer of ws's partition.
func (h *harness) partitionConsumer(ws string) jetstream.Consumer {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, events.PartitionsStream)
	if err != nil {
		h.t.Fatal(err)
	}
	n, err := events.PartitionCount(s.CachedInfo().Config)
	if err != nil {
		h.t.Fatal(err)
	}
	c, err := h.js.Consumer(ctx, events.PartitionsStream, worker.PartitionConsumerName(events.PartitionOf(ws, n)))
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

func (h *harness) statusEvents(ws string) []string {
	h.t.Helper()
	ctx := context.Background()
	s, _ := h.js.Stream(ctx, events.EventsStream)
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []string
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil || m.Subject != events.EventSubjectPrefix+ws+".status" {
			continue
		}
		var env events.Envelope
		_ = json.Unmarshal(m.Data, &env)
		p, _ := env.DecodeData()
		out = append(out, p.(*events.StatusChanged).Status)
	}
	return out
}

func (h *harness) deadLetters(subject string) []*jetstream.RawStreamMsg {
	h.t.Helper()
	ctx := context.Background()
	s, _ := h.js.Stream(ctx, events.DeadLettersStream)
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); seq <= info.State.LastSeq; seq++ {
		if m, err := s.GetMsg(ctx, seq); err == nil && m.Subject == subject {
			out = append(out, m)
		}
	}
	return out
}

func TestDeleteArrivingDuringCreateWaitsThenUndoesIt(t *testing.T) {
	h := newHarness(t)
	h.prov.SetBefore(func(op, _ string) error {
		if op == "EnsureBucket" {
			time.Sleep(50 * time.Millisecond) // a slow provider keeps the create running
		}
		return nil
	})
	h.start(testConfig("w1"))
	h.send(create(t, "ws-order"))
	h.send(command(t, "ws-order", &events.Delete{Purge: true}))
	h.waitFor("deleted", func() bool { return h.status("ws-order") == events.StatusDeleted })
	want := []string{"provisioning", "ready", "deleting", "deleted"}
	if got := h.statusEvents("ws-order"); !slices.Equal(got, want) {
		t.Fatalf("status events %v, want %v", got, want)
	}
	if s := h.prov.Workspace("ws-order"); !s.Empty() {
		t.Fatalf("left behind %+v", s)
	}
	h.waitFor("all commands acknowledged", h.settled)
}

func TestWorkspacesRunInParallelUpToTheConcurrency(t *testing.T) {
	h := newHarness(t)
	// Workspaces with a provider call in flight: a saga may have two at
	// once (its Keycloak and MinIO lanes), so calls are counted per name.
	var mu sync.Mutex
	inFlight := map[string]int{}
	var peak atomic.Int32
	h.prov.SetBefore(func(_, name string) error {
		mu.Lock()
		inFlight[name]++
		if n := int32(len(inFlight)); n > peak.Load() {
			peak.Store(n)
		}
		mu.Unlock()
		defer func() {
			mu.Lock()
			if inFlight[name]--; inFlight[name] == 0 {
				delete(inFlight, name)
			}
			mu.Unlock()
		}()
		time.Sleep(5 * time.Millisecond) // provider latency
		return nil
	})
	cfg := testConfig("w1")
	cfg.Concurrency = 4
	h.start(cfg)
	var names []string
	for i := range 12 {
		ws := "ws-par-" + string(rune('a'+i))
		names = append(names, ws)
		h.send(create(t, ws))
	}
	h.waitFor("all ready", func() bool {
		for _, ws := range names {
			if h.status(ws) != events.StatusReady {
				return false
			}
		}
		return true
	})
	if p := peak.Load(); p < 2 || p > 4 {
		t.Fatalf("peak workspaces with provider calls in flight %d, want 2..4", p)
	}
	if n := h.prov.Creates("bucket"); n != 12 {
		t.Fatalf("%d buckets", n)
	}
}

func TestRepeatedAndDuplicateCreatesMakeOneOfEach(t *testing.T) {
	h := newHarness(t)
	h.start(testConfig("w1"))
	cmd := create(t, "ws-once")
	raw, _ := json.Marshal(cmd)
	// The same command three times (a publisher that retried without
	// de-duplication), then another command for the same workspace.
	for range 3 {
		m := nats.NewMsg(events.CommandSubjectPrefix + "ws-once.create")
		m.Data = raw
		if _, err := h.js.PublishMsg(context.Background(), m, jetstream.WithMsgID(uuid.NewString())); err != nil {
			t.Fatal(err)
		}
	}
	h.send(create(t, "ws-once"))
	h.waitFor("ready", func() bool { return h.status("ws-once") == events.StatusReady })
	h.waitFor("all four acknowledged", h.settled)
	for kind, want := range map[string]int{"client": 1, "bucket": 1, "user": 1, "policy": 2, "mapping": 1} {
		if got := h.prov.Creates(kind); got != want {
			t.Errorf("%s created %d times", kind, got)
		}
	}
	if got := h.statusEvents("ws-once"); !slices.Equal(got, []string{"provisioning", "ready"}) {
		t.Fatalf("status events %v", got)
	}
}

func TestInvalidCommandsAreDeadLetteredWithAReason(t *testing.T) {
	h := newHarness(t)
	h.start(testConfig("w1"))
	ctx := context.Background()
	publish := func(subject string, data []byte) {
		m := nats.NewMsg(subject)
		m.Data = data
		if _, err := h.js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	noOwner := create(t, "ws-bad")
	noOwner.Data = json.RawMessage(`{"preferred_name":"bad"}`)
	raw, _ := json.Marshal(noOwner)
	publish(events.CommandSubjectPrefix+"ws-bad.create", raw)
	good, _ := json.Marshal(create(t, "ws-a"))
	publish(events.CommandSubjectPrefix+"ws-b.create", good)
	publish(events.CommandSubjectPrefix+"ws-c.create", []byte("not json"))

	h.waitFor("three dead letters", func() bool { return len(h.deadLetters(worker.DeadLetterRejected)) == 3 })
	// Different workspaces are handled in parallel: match by origin.
	want := map[string]struct{ seq, reason string }{
		"ws-bad.create": {"1", "default_owner"},
		"ws-b.create":   {"2", "belongs on workspace.cmd.ws-a.create"},
		"ws-c.create":   {"3", "not valid JSON"},
	}
	for _, m := range h.deadLetters(worker.DeadLetterRejected) {
		w, ok := want[strings.TrimPrefix(m.Header.Get(worker.HeaderOriginalSubject), events.CommandSubjectPrefix)]
		if !ok || m.Header.Get(worker.HeaderOriginalSequence) != w.seq || !strings.Contains(m.Header.Get(worker.HeaderReason), w.reason) {
			t.Errorf("dead letter headers %v", m.Header)
		}
		if w.seq == "1" && string(m.Data) != string(raw) {
			t.Error("the dead letter is not the original message")
		}
	}
	h.waitFor("rejected commands terminated", h.settled)
	if n := h.prov.Calls("EnsureClient"); n != 0 {
		t.Fatalf("a rejected command reached a provider (%d calls)", n)
	}
}

func TestCommandsOutOfDeliveriesAreDeadLettered(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// Another worker holds the workspace for an hour: every delivery is Nak'd.
	held := sagas.Record{Run: sagas.Run{Saga: sagas.SagaCreate, CommandID: "other", CorrelationID: "other", Actor: "admin",
		Params: sagas.Params{Owner: owner}}, Status: events.StatusProvisioning,
		Lease: &sagas.Lease{WorkerID: "w-other", Until: time.Now().Add(time.Hour)}}
	if _, err := h.progress.Save(ctx, "ws-held", held, 0); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("w1")
	cfg.MaxDeliver = 2
	h.start(cfg)
	cmd := create(t, "ws-held")
	h.send(cmd)
	h.waitFor("a max-deliveries dead letter", func() bool { return len(h.deadLetters(worker.DeadLetterMaxDeliveries)) == 1 })
	m := h.deadLetters(worker.DeadLetterMaxDeliveries)[0]
	if !strings.Contains(m.Header.Get(worker.HeaderReason), "max deliveries") ||
		m.Header.Get(worker.HeaderOriginalSubject) != events.CommandSubjectPrefix+"ws-held.create" {
		t.Fatalf("headers %v", m.Header)
	}
	var env events.Envelope
	if err := json.Unmarshal(m.Data, &env); err != nil || env.ID != cmd.ID {
		t.Fatalf("dead letter holds %q (%v), want command %s", m.Data, err, cmd.ID)
	}
	if n := h.prov.Calls("EnsureClient"); n != 0 {
		t.Fatalf("a leased workspace was touched (%d calls)", n)
	}
}

func TestFailedProvisioningResumesOnRetry(t *testing.T) {
	h := newHarness(t)
	h.start(testConfig("w1"))
	h.send(command(t, "ws-late", &events.Create{PreferredName: "late", DefaultOwner: "new-user"}))
	h.waitFor("failed", func() bool { return h.status("ws-late") == events.StatusFailed })
	h.prov.AddUser("new-user")
	h.send(command(t, "ws-late", &events.Retry{}))
	h.waitFor("ready", func() bool { return h.status("ws-late") == events.StatusReady })
	if n := h.prov.Calls("EnsureClient"); n != 1 {
		t.Fatalf("retry repeated finished steps: EnsureClient called %d times", n)
	}
	if got := h.statusEvents("ws-late"); !slices.Equal(got, []string{"provisioning", "failed", "provisioning", "ready"}) {
		t.Fatalf("status events %v", got)
	}
}

func TestShutdownFinishesTheStepInFlightAndAnotherWorkerResumes(t *testing.T) {
	h := newHarness(t)
	entered, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	h.prov.SetBefore(func(op, _ string) error {
		if op == "EnsureBucket" {
			once.Do(func() { close(entered); <-release })
		}
		return nil
	})
	stop := h.start(testConfig("w1"))
	h.send(create(t, "ws-stop"))
	<-entered
	stopped := make(chan error, 1)
	go func() { stopped <- stop() }()
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a step was in flight", err)
	default:
	}
	close(release)
	select {
	case err := <-stopped:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after the step finished")
	}
	rec, _, _ := h.progress.Load(context.Background(), "ws-stop")
	if !slices.Contains(rec.StepsDone, "bucket") || slices.Contains(rec.StepsDone, "policy") || rec.Lease != nil {
		t.Fatalf("record after stop %+v", rec)
	}
	h.start(testConfig("w2"))
	h.waitFor("ready", func() bool { return h.status("ws-stop") == events.StatusReady })
	if n := h.prov.Calls("EnsureBucket"); n != 1 {
		t.Fatalf("the finished bucket step ran %d times", n)
	}
}

func TestConfigValidation(t *testing.T) {
	cfg := worker.Config{}.WithDefaults()
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "endpoint") {
		t.Fatalf("missing endpoint: %v", err)
	}
	cfg.Endpoint = "http://127.0.0.1:9000"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.Concurrency != 8 || cfg.MaxRetryElapsed != 5*time.Minute || cfg.WorkerID == "" {
		t.Fatalf("defaults %+v", cfg)
	}
	cfg.MaxDeliver = 1
	if err := cfg.Validate(); err == nil {
		t.Fatal("max deliver 1 accepted")
	}
	if _, err := worker.New(worker.Config{Endpoint: "x"}, worker.Deps{}); err == nil {
		t.Fatal("missing deps accepted")
	}
}

func TestHeldMessagesAreHeartBeatenPastAckWait(t *testing.T) {
	h := newHarness(t)
	h.prov.SetBefore(func(op, _ string) error {
		if op == "EnsureBucket" {
			time.Sleep(2500 * time.Millisecond) // a provider slower than AckWait
		}
		return nil
	})
	cfg := testConfig("w1")
	cfg.AckWait = time.Second
	h.start(cfg)
	h.send(create(t, "ws-slow"))
	h.send(command(t, "ws-slow", &events.Delete{Purge: true})) // queued behind, held as long
	h.waitFor("deleted", func() bool { return h.status("ws-slow") == events.StatusDeleted })
	h.waitFor("acknowledged", h.settled)
	info, err := h.partitionConsumer("ws-slow").Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.Delivered.Consumer != 2 {
		t.Fatalf("%d deliveries of 2 commands: AckWait expired on a held message", info.Delivered.Consumer)
	}
	if n := h.prov.Calls("EnsureClient"); n != 1 {
		t.Fatalf("EnsureClient called %d times", n)
	}
}

// TestMetricsCountOutcomesStepsAndDeadLetters: a workspace provisioned
// and a command rejected show in the worker's series.
func TestMetricsCountOutcomesStepsAndDeadLetters(t *testing.T) {
	h := newHarness(t)
	reg := prometheus.NewRegistry()
	h.metrics = reg
	h.start(testConfig("w1"))
	h.send(create(t, "ws-m"))
	h.waitFor("ready", func() bool { return h.status("ws-m") == events.StatusReady })
	m := nats.NewMsg(events.CommandSubjectPrefix + "ws-x.create")
	m.Data = []byte("not json")
	if _, err := h.js.PublishMsg(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	h.waitFor("a dead letter", func() bool { return len(h.deadLetters(worker.DeadLetterRejected)) == 1 })
	h.waitFor("both commands settled", h.settled)
	want := `
# HELP workspace_worker_commands_total Command deliveries by command and outcome (done, failed, rejected, requeued).
# TYPE workspace_worker_commands_total counter
workspace_worker_commands_total{command="create",outcome="done"} 1
workspace_worker_commands_total{command="create",outcome="rejected"} 1
# HELP workspace_worker_dead_letters_total Messages copied to WORKSPACE_DEAD_LETTERS, by dead-letter subject.
# TYPE workspace_worker_dead_letters_total counter
workspace_worker_dead_letters_total{subject="workspace.dlq.max_deliveries"} 0
workspace_worker_dead_letters_total{subject="workspace.dlq.rejected"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "workspace_worker_commands_total", "workspace_worker_dead_letters_total"); err != nil {
		t.Fatal(err)
	}
	steps, err := testutil.GatherAndCount(reg, "workspace_worker_step_duration_seconds")
	if err != nil || steps != 8 {
		t.Fatalf("step series %d (%v), want one per create step", steps, err)
	}
}
