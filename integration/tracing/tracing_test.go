// Package tracing proves that one trace covers a create from the API
// request, through the command on NATS, to every saga step and the
// Keycloak and MinIO calls each makes.
package tracing

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/api"
	"github.com/eo-workspaces/provisioner/handlers/worker"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/keycloak"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
	"github.com/eo-workspaces/provisioner/schemas"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
	"github.com/eo-workspaces/provisioner/tracing"
)

func TestOneTraceFromTheRequestToEveryProviderCall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	rec := tracetest.NewSpanRecorder()
	otel.SetTracerProvider(sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec)))
	if _, err := tracing.Setup(ctx, "test"); err != nil { // the propagator; no exporter
		t.Fatal(err)
	}
	mio, err := minioserver.Start(ctx, minioserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mio.Stop() })
	emu, err := kcemu.Start(ctx, kcemu.Config{DevRealm: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	b := bustest.Start(t)
	schema, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(b.JS, schema)
	startWorker(ctx, t, b, pub, schema, emu, mio)
	srv := httptest.NewServer(startAPI(ctx, t, b, pub))
	t.Cleanup(srv.Close)

	const ws = "ws-traced"
	ready := awaitReady(t, b.Conn, ws)
	resp, err := http.Post(srv.URL+"/workspaces", "application/json", strings.NewReader(`{"preferred_name":"traced","default_owner":"example-user-1"}`))
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /workspaces: %v %v", resp, err)
	}
	resp.Body.Close()
	select {
	case <-ready:
	case <-ctx.Done():
		t.Fatal("the workspace never became ready")
	}
	commandEnded(t, rec, "command workspace.cmd."+ws+".create")
	checkTrace(t, rec, emu.URL(), mio.URL())
}

// commandEnded waits for the command's span to end: it ends once the
// worker has settled the message, just after the ready event went out.
func commandEnded(t *testing.T, rec *tracetest.SpanRecorder, name string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !slices.ContainsFunc(rec.Ended(), func(s sdktrace.ReadOnlySpan) bool { return s.Name() == name }) {
		if time.Now().After(deadline) {
			t.Fatalf("span %q never ended", name)
		}
		time.Sleep(10 * time.Millisecond) // the recorder offers nothing to wait on
	}
}

// checkTrace finds the request's span and checks that the command, every
// create step and calls to both providers are in its trace.
func checkTrace(t *testing.T, rec *tracetest.SpanRecorder, keycloakURL, minioURL string) {
	t.Helper()
	spans := rec.Ended()
	i := slices.IndexFunc(spans, func(s sdktrace.ReadOnlySpan) bool { return s.Name() == "POST /workspaces" })
	if i < 0 {
		t.Fatalf("no span of the request among %d", len(spans))
	}
	trace := spans[i].SpanContext().TraceID()
	seen, hosts := map[string]bool{}, map[string]bool{}
	for _, s := range spans {
		if s.SpanContext().TraceID() != trace {
			continue
		}
		seen[s.Name()] = true
		for _, kv := range s.Attributes() {
			if kv.Key == attribute.Key("server.address") || kv.Key == attribute.Key("server.port") {
				hosts[kv.Value.String()] = true
			}
		}
	}
	want := []string{"command workspace.cmd.ws-traced.create", "create keycloak_client", "create keycloak_roles",
		"create owner_role", "create bucket", "create policy", "create policy_readonly", "create credentials"}
	for _, name := range want {
		if !seen[name] {
			t.Errorf("no span %q in the request's trace; it has %v", name, keys(seen))
		}
	}
	for what, raw := range map[string]string{"Keycloak": keycloakURL, "MinIO": minioURL} {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		if !hosts[u.Port()] {
			t.Errorf("no call to %s (port %s) in the request's trace; ports seen %v", what, u.Port(), keys(hosts))
		}
	}
}

func startWorker(ctx context.Context, t *testing.T, b *bus.Bus, pub *events.Publisher, schema *schemas.Validator,
	emu *kcemu.Server, mio *minioserver.Server) {
	t.Helper()
	idp, err := keycloak.New(keycloak.Config{BaseURL: emu.URL(), Realm: kcemu.DevRealmName,
		ClientID: kcemu.DevWorkerClientID, ClientSecret: kcemu.DevWorkerClientSecret}, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	store, err := objectstore.New(objectstore.Config{Endpoint: mio.Endpoint(), AccessKey: mio.RootUser(),
		SecretKey: mio.RootPassword(), Region: mio.Region()})
	if err != nil {
		t.Fatal(err)
	}
	secKV, err := b.JS.KeyValue(ctx, events.SecretsBucket)
	if err != nil {
		t.Fatal(err)
	}
	vault, err := secrets.New(secKV, secrets.Config{Key: secrets.KeyFromPassphrase("tracing")})
	if err != nil {
		t.Fatal(err)
	}
	w, err := worker.New(worker.Config{Concurrency: 2, Endpoint: mio.URL(), Region: mio.Region()},
		worker.Deps{JS: b.JS, Publisher: pub, Schema: schema, Identity: idp, Store: store, Secrets: vault, Log: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	t.Cleanup(func() { stop(); <-done })
	select {
	case <-w.Ready():
	case err := <-done:
		t.Fatalf("worker: %v", err)
	}
}

func startAPI(ctx context.Context, t *testing.T, b *bus.Bus, pub *events.Publisher) http.Handler {
	t.Helper()
	namesKV, err := b.JS.KeyValue(ctx, events.NamesBucket)
	if err != nil {
		t.Fatal(err)
	}
	idem, err := b.JS.KeyValue(ctx, events.IdempotencyBucket)
	if err != nil {
		t.Fatal(err)
	}
	reader := readmodel.NewReader(zap.NewNop())
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = reader.Run(rctx, b.JS); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	<-reader.Ready()
	h, err := api.New(api.Config{}, api.Deps{Publisher: pub, Workspaces: reader, Names: names.NewKV(namesKV),
		Idempotency: idem, JS: b.JS, Auth: auth.Static(auth.Principal{Subject: "admin", Username: "admin", Admin: true})})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// awaitReady closes the returned channel when ws's ready status event is
// published.
func awaitReady(t *testing.T, nc *nats.Conn, ws string) <-chan struct{} {
	t.Helper()
	ready := make(chan struct{})
	var once bool
	sub, err := nc.Subscribe(events.EventSubjectPrefix+ws+".status", func(m *nats.Msg) {
		var env struct {
			Data events.StatusChanged `json:"data"`
		}
		if json.Unmarshal(m.Data, &env) == nil && env.Data.Status == events.StatusReady && !once {
			once = true
			close(ready)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ready
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
