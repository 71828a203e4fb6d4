package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
	"github.com/eo-workspaces/provisioner/schemas"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// readyTimeout bounds one workspace's create→ready in the pipeline run.
const readyTimeout = 5 * time.Minute

// provisionStack is real MinIO, the Keycloak emulator and embedded
// JetStream, each started fresh for one benchmark run.
type provisionStack struct {
	mio    *minioserver.Server
	emu    *kcemu.Server
	bus    *bus.Bus
	pub    *events.Publisher
	schema *schemas.Validator
	vault  *secrets.Store
}

func startProvisionStack(ctx context.Context, b *testing.B) *provisionStack {
	b.Helper()
	mio, err := minioserver.Start(ctx, minioserver.Options{}) // its own temporary data dir
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = mio.Stop() })
	emu, err := kcemu.Start(ctx, kcemu.Config{DevRealm: true}) // state in memory
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = emu.Close() })
	bs := bustest.Start(b)
	v, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	secKV, err := bs.JS.KeyValue(ctx, events.SecretsBucket)
	if err != nil {
		b.Fatal(err)
	}
	vault, err := secrets.New(secKV, secrets.Config{Key: secrets.KeyFromPassphrase("bench")})
	if err != nil {
		b.Fatal(err)
	}
	return &provisionStack{mio: mio, emu: emu, bus: bs, pub: events.NewPublisher(bs.JS, v), schema: v, vault: vault}
}

// adapters returns a new pair of the adapters the worker uses, so each
// run starts from its own clients and token.
func (s *provisionStack) adapters(b *testing.B) (*keycloak.Adapter, *objectstore.Store) {
	b.Helper()
	idp, err := keycloak.New(keycloak.Config{BaseURL: s.emu.URL(), Realm: kcemu.DevRealmName,
		ClientID: kcemu.DevWorkerClientID, ClientSecret: kcemu.DevWorkerClientSecret}, zap.NewNop())
	if err != nil {
		b.Fatal(err)
	}
	store, err := objectstore.New(objectstore.Config{Endpoint: s.mio.Endpoint(), AccessKey: s.mio.RootUser(),
		SecretKey: s.mio.RootPassword(), Region: s.mio.Region()})
	if err != nil {
		b.Fatal(err)
	}
	return idp, store
}

// side is one way of provisioning, measured over the rounds it runs.
type side struct {
	prefix    string // workspaces are prefix-<i>
	provision func(ws string) (time.Duration, error)
	n         int
	elapsed   time.Duration
	lat       *latencies
	failures  sync.Map
}

func newSide(prefix string, provision func(ws string) (time.Duration, error)) *side {
	return &side{prefix: prefix, provision: provision, lat: &latencies{}}
}

// round provisions workspaces lo..hi-1, c at a time, each goroutine
// starting the next as soon as its last one is done.
func (s *side) round(lo, hi, c int) {
	begin := time.Now()
	inParallel(hi-lo, c, func(i int) {
		ws := fmt.Sprintf("%s-%d", s.prefix, lo+i)
		d, err := s.provision(ws)
		if err != nil {
			s.failures.Store(ws, err)
			return
		}
		s.lat.add(d)
	})
	s.elapsed += time.Since(begin)
	s.n += hi - lo
}

// check fails the benchmark with every workspace that did not make it.
func (s *side) check(b *testing.B) {
	b.Helper()
	s.failures.Range(func(k, v any) bool { b.Errorf("%s: %v", k, v); return true })
	if b.Failed() {
		b.FailNow()
	}
}

func (s *side) perSec() float64 { return float64(s.n) / s.elapsed.Seconds() }

func (s *side) line(what string, c int) string {
	return fmt.Sprintf("%s: %d workspaces at concurrency %d in %s: %.2f workspaces/s, p50 %.0f ms, p95 %.0f ms, p99 %.0f ms",
		what, s.n, c, s.elapsed.Round(time.Millisecond), s.perSec(),
		ms(s.lat.pct(0.50)), ms(s.lat.pct(0.95)), ms(s.lat.pct(0.99)))
}

// BenchmarkProvision provisions BENCH_N workspaces (default 200) through
// the worker at concurrency BENCH_C (default 8), timing create→ready from
// the ready status events, and makes the same adapter calls the create
// saga makes for as many other workspaces in a plain loop at the same
// concurrency: the floor no pipeline can beat. The two alternate in
// rounds of BENCH_ROUND workspaces (default 25), in ABBA order, so that
// load from elsewhere on the machine and MinIO's growing IAM state weigh
// on both alike.
func BenchmarkProvision(b *testing.B) {
	n, c, r := envInt(b, "BENCH_N", 200), envInt(b, "BENCH_C", 8), envInt(b, "BENCH_ROUND", 25)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	st := startProvisionStack(ctx, b)
	pipe := startPipeline(ctx, b, st, c)
	idp, store := st.adapters(b)
	times := newCallTimes()
	direct := newSide("ws-bench-d", func(ws string) (time.Duration, error) {
		return provisionDirect(ctx, idp, store, times, ws)
	})
	pipeline := newSide("ws-bench-p", func(ws string) (time.Duration, error) { return pipe.provision(ctx, ws) })

	// Warm both up (connections, tokens, the worker's consumer, MinIO's
	// IAM) outside the figures, on names neither measures.
	warm := newCallTimes()
	for _, w := range []*side{
		newSide("ws-bench-wd", func(ws string) (time.Duration, error) { return provisionDirect(ctx, idp, store, warm, ws) }),
		newSide("ws-bench-wp", func(ws string) (time.Duration, error) { return pipe.provision(ctx, ws) }),
	} {
		w.round(0, c, c)
		w.check(b)
	}
	pipe.steps.reset()

	b.ResetTimer()
	for lo, i := 0, 0; lo < n; lo, i = lo+r, i+1 {
		hi := min(n, lo+r)
		first, second := direct, pipeline
		if i%2 == 1 {
			first, second = pipeline, direct
		}
		first.round(lo, hi, c)
		second.round(lo, hi, c)
	}
	b.StopTimer()
	direct.check(b)
	pipeline.check(b)

	tput, p50 := pipeline.perSec()/direct.perSec(), ms(pipeline.lat.pct(0.50))/ms(direct.lat.pct(0.50))
	b.ReportMetric(pipeline.perSec(), "pipeline-ws/s")
	b.ReportMetric(ms(pipeline.lat.pct(0.50)), "pipeline-p50-ms")
	b.ReportMetric(ms(pipeline.lat.pct(0.99)), "pipeline-p99-ms")
	b.ReportMetric(direct.perSec(), "direct-ws/s")
	b.ReportMetric(ms(direct.lat.pct(0.50)), "direct-p50-ms")
	b.ReportMetric(tput, "throughput-ratio")
	b.ReportMetric(p50, "p50-ratio")
	fmt.Println(pipeline.line("pipeline (command → worker → ready event)", c))
	fmt.Println(direct.line("direct (the saga's adapter calls in a plain loop)", c))
	fmt.Printf("ratios: throughput pipeline/direct %.2f (target >= 0.9), p50 pipeline/direct %.2f (target <= 1.2)\n", tput, p50)
	if k := pipe.retries.Load(); k > 0 {
		fmt.Printf("pipeline: %d step attempts failed and were retried\n", k)
	}
	pipe.steps.print()
	times.print(n)
	iamSplit(ctx, b, st, c)
}

// pipeline is the worker with the subscriptions that watch its events.
type pipeline struct {
	pub      *events.Publisher
	outcomes *outcomes
	steps    *timeline
	retries  atomic.Int64
}

// startPipeline runs a worker with concurrency c until the benchmark ends.
func startPipeline(ctx context.Context, b *testing.B, st *provisionStack, c int) *pipeline {
	b.Helper()
	idp, store := st.adapters(b)
	w, err := worker.New(worker.Config{Concurrency: c, Endpoint: st.mio.URL(), Region: st.mio.Region()},
		worker.Deps{JS: st.bus.JS, Publisher: st.pub, Schema: st.schema, Identity: idp, Store: store,
			Secrets: st.vault, Log: zap.NewNop()})
	if err != nil {
		b.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	b.Cleanup(func() { stop(); <-done })
	select {
	case <-w.Ready():
	case err := <-done:
		b.Fatalf("worker stopped at start: %v", err)
	}
	p := &pipeline{pub: st.pub, outcomes: newOutcomes(), steps: newTimeline()}
	for subject, handle := range map[string]nats.MsgHandler{
		"*.status":         p.outcomes.deliver,
		"*.step.completed": p.steps.stepDone,
		"*.step.failed":    func(*nats.Msg) { p.retries.Add(1) },
	} {
		sub, err := st.bus.Conn.Subscribe(events.EventSubjectPrefix+subject, handle)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := st.bus.Conn.Flush(); err != nil { // the subscriptions are in place before the first command
		b.Fatal(err)
	}
	return p
}

// provision publishes the create command of ws and waits for its ready
// status event.
func (p *pipeline) provision(ctx context.Context, ws string) (time.Duration, error) {
	env, err := events.New(ws, &events.Create{PreferredName: strings.TrimPrefix(ws, events.NamePrefix),
		DefaultOwner: kcemu.DevUser1}, events.Meta{Actor: "bench"})
	if err != nil {
		return 0, err
	}
	ch := p.outcomes.await(ws)
	t0 := time.Now()
	if _, err := p.pub.Publish(ctx, env); err != nil {
		return 0, err
	}
	select {
	case sc := <-ch:
		if sc.Status != events.StatusReady {
			return 0, fmt.Errorf("status %s at step %s: %s", sc.Status, sc.FailedStep, sc.LastError)
		}
		took := time.Since(t0)
		p.steps.add(ws, t0, t0.Add(took))
		return took, nil
	case <-time.After(readyTimeout):
		return 0, fmt.Errorf("not ready within %s", readyTimeout)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// outcomes hands each awaited workspace its first final status (ready or
// failed) from the status events.
type outcomes struct {
	mu      sync.Mutex
	waiting map[string]chan events.StatusChanged
}

func newOutcomes() *outcomes { return &outcomes{waiting: map[string]chan events.StatusChanged{}} }

func (o *outcomes) await(ws string) <-chan events.StatusChanged {
	ch := make(chan events.StatusChanged, 1)
	o.mu.Lock()
	o.waiting[ws] = ch
	o.mu.Unlock()
	return ch
}

func (o *outcomes) deliver(m *nats.Msg) {
	var env events.Envelope
	if err := json.Unmarshal(m.Data, &env); err != nil {
		return
	}
	var sc events.StatusChanged
	if err := json.Unmarshal(env.Data, &sc); err != nil {
		return
	}
	if sc.Status != events.StatusReady && sc.Status != events.StatusFailed {
		return
	}
	o.mu.Lock()
	ch, ok := o.waiting[env.Subject]
	delete(o.waiting, env.Subject)
	o.mu.Unlock()
	if ok {
		ch <- sc
	}
}

// timeline keeps, per workspace, when each step.completed event arrived,
// to split the pipeline's create→ready into the time up to each step's
// completion from the one before (the first from the publish).
type timeline struct {
	mu    sync.Mutex
	done  map[string]map[string]time.Time // workspace → step → arrival
	order []string                        // step names in the order first seen
	total map[string]time.Duration
	n     int // workspaces added
}

func newTimeline() *timeline {
	return &timeline{done: map[string]map[string]time.Time{}, total: map[string]time.Duration{}}
}

func (t *timeline) stepDone(m *nats.Msg) {
	at := time.Now()
	var env events.Envelope
	var sc events.StepCompleted
	if json.Unmarshal(m.Data, &env) != nil || json.Unmarshal(env.Data, &sc) != nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done[env.Subject] == nil {
		t.done[env.Subject] = map[string]time.Time{}
	}
	t.done[env.Subject][sc.Step] = at
}

// laneBefore names, for each create step, the step before it in its lane
// (sagas/provision.go runs the Keycloak and MinIO lanes side by side).
var laneBefore = map[string]string{
	"keycloak_roles": "keycloak_client", "owner_role": "keycloak_roles",
	"quota": "bucket", "policy": "quota", "credentials": "policy",
}

// add closes a workspace's timeline: published at sent, ready at ready.
// Each step is timed from the step before it in its lane (the first of a
// lane from the publish), the ready event from the last step done.
func (t *timeline) add(ws string, sent, ready time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.n++
	marks := t.done[ws]
	delete(t.done, ws)
	names := slices.SortedFunc(maps.Keys(marks), func(a, b string) int { return marks[a].Compare(marks[b]) })
	last := sent
	for _, name := range names {
		from := sent
		if before, ok := marks[laneBefore[name]]; ok {
			from = before
		}
		t.record(name, marks[name].Sub(from))
		last = marks[name]
	}
	t.record("→ ready event", ready.Sub(last))
}

func (t *timeline) record(name string, d time.Duration) {
	if _, seen := t.total[name]; !seen {
		t.order = append(t.order, name)
	}
	t.total[name] += d
}

// reset forgets the workspaces added so far.
func (t *timeline) reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.order, t.total, t.n = nil, map[string]time.Duration{}, 0
}

func (t *timeline) print() {
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Println("pipeline, mean time to each step's completion event from the step before it in its lane (a lane's first from the publish):")
	for _, name := range t.order {
		fmt.Printf("  %-20s %8.1f ms\n", name, float64(t.total[name])/float64(t.n)/1e6)
	}
}

// createCalls names the adapter calls of the create saga, in its order
// (sagas/provision.go); EnsureUser makes the owner's own key pair.
var createCalls = []string{"EnsureClient", "EnsureClientRoles", "GrantClientRole",
	"EnsureBucket", "EnsureBucketPolicy", "EnsureReadOnlyPolicy", "EnsureUser"}

// provisionDirect makes the create saga's adapter calls for ws, in its
// order, and returns the time from the first call's start to the last's end.
func provisionDirect(ctx context.Context, idp *keycloak.Adapter, store *objectstore.Store, times *callTimes,
	ws string) (time.Duration, error) {
	secret, err := randomSecret()
	if err != nil {
		return 0, err
	}
	t0 := time.Now()
	calls := []func() error{
		func() error { _, err := idp.EnsureClient(ctx, ws); return err },
		func() error { return idp.EnsureClientRoles(ctx, ws, events.Roles...) },
		func() error { return idp.GrantClientRole(ctx, ws, kcemu.DevUser1, events.RoleAdmin) },
		func() error { return store.EnsureBucket(ctx, ws) },
		func() error { return store.EnsureBucketPolicy(ctx, ws, ws) },
		func() error { return store.EnsureReadOnlyPolicy(ctx, sagas.ReadOnlyPolicy(ws), ws) },
		func() error { return store.EnsureUser(ctx, accessKey(ws), secret, ws) },
	}
	for i, call := range calls {
		if err := times.time(i, call); err != nil {
			return 0, fmt.Errorf("%s: %w", createCalls[i], err)
		}
	}
	return time.Since(t0), nil
}

// accessKey is a member key's access key as long as the saga's (20).
func accessKey(ws string) string {
	h := hex.EncodeToString([]byte(ws))
	return strings.ToUpper(h[len(h)-20:])
}

// randomSecret is what the saga generates: 160 random bits as hex.
func randomSecret() (string, error) {
	p := make([]byte, 20)
	if _, err := rand.Read(p); err != nil {
		return "", fmt.Errorf("generate secret: %w", err)
	}
	return hex.EncodeToString(p), nil
}

// callTimes adds up the time spent in each of createCalls.
type callTimes struct{ total []atomic.Int64 }

func newCallTimes() *callTimes { return &callTimes{total: make([]atomic.Int64, len(createCalls))} }

func (t *callTimes) time(i int, f func() error) error {
	start := time.Now()
	err := f()
	t.total[i].Add(int64(time.Since(start)))
	return err
}

func (t *callTimes) print(n int) {
	var sum int64
	for i := range t.total {
		sum += t.total[i].Load()
	}
	fmt.Println("direct, mean time per adapter call:")
	for i, name := range createCalls {
		d := t.total[i].Load()
		fmt.Printf("  %-20s %8.1f ms  %4.1f%%\n", name, float64(d)/float64(n)/1e6, 100*float64(d)/float64(sum))
	}
}

// iamSplit looks inside EnsureUser: madmin's AddUser and SetPolicy timed
// apart on fresh users, c at a time, and the admin payload encryption
// madmin applies to AddUser's body, alone and c at a time in this process.
func iamSplit(ctx context.Context, b *testing.B, st *provisionStack, c int) {
	b.Helper()
	adm, err := madmin.NewWithOptions(st.mio.Endpoint(), &madmin.Options{
		Creds: credentials.NewStaticV4(st.mio.RootUser(), st.mio.RootPassword(), "")})
	if err != nil {
		b.Fatal(err)
	}
	const policy = "ws-bench-d-0" // a bucket policy the direct run made
	k := 4 * c
	var addUser, setPolicy atomic.Int64
	var failed atomic.Value
	begin := time.Now()
	inParallel(k, c, func(i int) {
		user := fmt.Sprintf("ws-bench-split-%d", i)
		t0 := time.Now()
		if err := adm.AddUser(ctx, user, "secret-"+user); err != nil {
			failed.Store(fmt.Errorf("add user %s: %w", user, err))
			return
		}
		t1 := time.Now()
		//lint:ignore SA1019 the call the adapter makes
		if err := adm.SetPolicy(ctx, policy, user, false); err != nil {
			failed.Store(fmt.Errorf("set policy on %s: %w", user, err))
			return
		}
		addUser.Add(int64(t1.Sub(t0)))
		setPolicy.Add(int64(time.Since(t1)))
	})
	wall := time.Since(begin)
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	fmt.Printf("inside EnsureUser, %d users at concurrency %d in %s: AddUser mean %.1f ms, SetPolicy mean %.1f ms\n",
		k, c, wall.Round(time.Millisecond), float64(addUser.Load())/float64(k)/1e6, float64(setPolicy.Load())/float64(k)/1e6)

	payload := []byte(`{"secretKey":"0123456789abcdef0123456789abcdef01234567","status":"enabled"}`)
	encrypt := func(int) {
		if _, err := madmin.EncryptData(st.mio.RootPassword(), payload); err != nil {
			failed.Store(err)
		}
	}
	t0 := time.Now()
	inParallel(k, 1, encrypt)
	serial := time.Since(t0) / time.Duration(k)
	t0 = time.Now()
	inParallel(k, c, encrypt)
	parallel := time.Since(t0) / time.Duration(k)
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	kdf := "argon2id"
	if madmin.FIPSEnabled() {
		kdf = "PBKDF2, fips build tag"
	}
	fmt.Printf("madmin.EncryptData (%s): %.1f ms each one at a time; %.1f ms of wall time each with %d at once\n", kdf,
		ms(serial), ms(parallel), c)
}

// inParallel calls f(0..n-1) from c goroutines, each taking the next index
// as soon as its last call returns.
func inParallel(n, c int, f func(i int)) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				f(i)
			}
		})
	}
	wg.Wait()
}

func envInt(b *testing.B, name string, def int) int {
	b.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil || v < 1 {
		b.Fatalf("%s=%q: want a positive integer", name, s)
	}
	return v
}
