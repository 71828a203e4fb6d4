package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/projection"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/schemas"
)

// stack is the API over a real embedded JetStream, the real publisher and
// the real projection (projector and reader).
type stack struct {
	t      *testing.T
	ctx    context.Context
	js     jetstream.JetStream
	pub    *events.Publisher
	schema *schemas.Validator
	names  jetstream.KeyValue
	idem   jetstream.KeyValue
	proj   jetstream.KeyValue
	reader *readmodel.Reader
	deps   Deps
	h      http.Handler
}

// testCredentials stands in for the secrets store the worker fills; the
// API only passes what it returns through.
type testCredentials map[string]map[string]string

func (c testCredentials) MemberCredentials(_ context.Context, ws, username string) (map[string]string, error) {
	if creds, ok := c[ws+"/"+username]; ok {
		return creds, nil
	}
	return c[ws], nil
}

// testAuth signs in "Bearer <username>"; the user "admin" holds the admin
// realm role, and so does every user whose name starts with "admin". The JWT verifier has its own tests in auth/.
func testAuth() Authenticator {
	return auth.Func(func(r *http.Request) (auth.Principal, error) {
		tok, err := auth.BearerToken(r)
		if err != nil {
			return auth.Principal{}, err
		}
		p := auth.Principal{Subject: "id-" + tok, Username: tok}
		if strings.HasPrefix(tok, "admin") {
			p.RealmRoles = []string{auth.DefaultAdminRole}
		}
		return p, nil
	})
}

func newStack(t *testing.T) *stack {
	t.Helper()
	return newStackOn(t, bustest.Start(t).JS)
}

// newStackOn is a stack over js, whose topology is set up.
func newStackOn(t *testing.T, js jetstream.JetStream) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	b := struct{ JS jetstream.JetStream }{js}
	schema, err := schemas.New()
	if err != nil {
		t.Fatalf("schemas: %v", err)
	}
	s := &stack{t: t, ctx: ctx, js: b.JS, schema: schema, pub: events.NewPublisher(b.JS, schema)}
	s.names = s.kv(events.NamesBucket)
	s.idem = s.kv(events.IdempotencyBucket)
	s.proj = s.kv(events.ProjectionBucket)
	projector, err := projection.NewProjector(ctx, b.JS, schema, zap.NewNop())
	if err != nil {
		t.Fatalf("projector: %v", err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = projector.Run(ctx); done <- struct{}{} }()
	s.reader = readmodel.NewReader(zap.NewNop())
	go func() { _ = s.reader.Run(ctx, b.JS); done <- struct{}{} }()
	t.Cleanup(func() { cancel(); <-done; <-done })
	<-s.reader.Ready()
	s.deps = Deps{Publisher: s.pub, Workspaces: s.reader, Credentials: testCredentials{},
		Names: names.NewKV(s.names), Idempotency: s.idem, JS: b.JS, Auth: testAuth(), Log: zap.NewNop()}
	s.h = s.handler(Config{}, s.deps)
	return s
}

func (s *stack) kv(bucket string) jetstream.KeyValue {
	kv, err := s.js.KeyValue(s.ctx, bucket)
	if err != nil {
		s.t.Fatalf("kv %s: %v", bucket, err)
	}
	return kv
}

func (s *stack) handler(cfg Config, d Deps) http.Handler {
	h, err := New(cfg, d)
	if err != nil {
		s.t.Fatalf("new api: %v", err)
	}
	return h
}

// req describes one request; user "" sends no Authorization header.
type req struct {
	method, path, user string
	body               string
	contentType        string // default application/json when body is set; "-" for none
	header             map[string]string
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r resp) errBody(t *testing.T) errorBody {
	t.Helper()
	var e errorBody
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil || e.Error == "" {
		t.Fatalf("not an error body (%v): %s", err, r.body)
	}
	return e
}

func (s *stack) do(h http.Handler, rq req) resp {
	hr := httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
	if rq.body != "" {
		hr.Header.Set("Content-Type", "application/json")
	}
	switch rq.contentType {
	case "":
	case "-":
		hr.Header.Del("Content-Type")
	default:
		hr.Header.Set("Content-Type", rq.contentType)
	}
	if rq.user != "" {
		hr.Header.Set("Authorization", "Bearer "+rq.user)
	}
	for k, v := range rq.header {
		hr.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, hr)
	return resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
}

func (s *stack) call(rq req) resp { return s.do(s.h, rq) }

func (s *stack) msgs(stream string) uint64 {
	st, err := s.js.Stream(s.ctx, stream)
	if err != nil {
		s.t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(s.ctx)
	if err != nil {
		s.t.Fatalf("stream info %s: %v", stream, err)
	}
	return info.State.Msgs
}

// lastCommand returns the last message on a subject, checked against its schema.
func (s *stack) lastCommand(subject string) events.Envelope {
	s.t.Helper()
	st, err := s.js.Stream(s.ctx, events.CommandsStream)
	if err != nil {
		s.t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(s.ctx, subject)
	if err != nil {
		s.t.Fatalf("no message on %s: %v", subject, err)
	}
	env, err := events.Parse(m.Data, s.schema)
	if err != nil {
		s.t.Fatalf("message on %s fails its schema: %v", subject, err)
	}
	if got := m.Header.Get(jetstream.MsgIDHeader); got != env.ID {
		s.t.Fatalf("Nats-Msg-Id %q, want the envelope id %q", got, env.ID)
	}
	return env
}

// emit publishes a worker event, as the sagas will.
func (s *stack) emit(name string, data events.Payload) {
	s.t.Helper()
	env, err := events.New(name, data, events.Meta{Actor: "worker"})
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.pub.Publish(s.ctx, env); err != nil {
		s.t.Fatalf("publish %s: %v", env.Type, err)
	}
}

// put writes a workspace straight into the read model.
func (s *stack) put(ws readmodel.Workspace) {
	s.t.Helper()
	if ws.CreatedAt.IsZero() {
		ws.CreatedAt = time.Now().UTC()
		ws.UpdatedAt = ws.CreatedAt
	}
	raw, _ := json.Marshal(ws)
	if _, err := s.proj.Put(s.ctx, ws.Name, raw); err != nil {
		s.t.Fatalf("put %s: %v", ws.Name, err)
	}
}

// waitFor polls the read model until cond holds for the workspace.
func (s *stack) waitFor(name string, cond func(readmodel.Workspace, bool) bool) {
	s.t.Helper()
	eventually(s.t, fmt.Sprintf("read model of %s", name), func() bool {
		ws, ok := s.reader.Get(name)
		return cond(ws, ok)
	})
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func member(user, role string) readmodel.Member {
	return readmodel.Member{Username: user, Role: role}
}

func TestBadInputPublishesNothing(t *testing.T) {
	s := newStack(t)
	s.put(readmodel.Workspace{Name: "ws-a", Status: events.StatusReady, Owner: "owner",
		Members: []readmodel.Member{member("owner", events.RoleAdmin)}})
	s.waitFor("ws-a", func(_ readmodel.Workspace, ok bool) bool { return ok })
	small := s.handler(Config{MaxBodyBytes: 100}, s.deps)
	big := `{"preferred_name":"` + strings.Repeat("x", 200) + `","default_owner":"u"}`
	create := func(body string) req { return req{method: "POST", path: "/workspaces", user: "admin", body: body} }
	addMember := func(body string) req {
		return req{method: "POST", path: "/workspaces/ws-a/members", user: "admin", body: body}
	}
	tests := []struct {
		name   string
		h      http.Handler
		rq     req
		status int
		field  string
	}{
		{"malformed json", nil, create(`{"preferred_name":`), 400, ""},
		{"not json at all", nil, create(`hello`), 400, ""},
		{"trailing data", nil, create(`{"preferred_name":"a","default_owner":"u"} {}`), 400, ""},
		{"empty body", nil, create(` `), 400, ""},
		{"array body", nil, create(`[]`), 422, ""},
		{"unknown field", nil, create(`{"preferred_name":"a","default_owner":"u","quota":5}`), 422, "quota"},
		{"wrong type", nil, create(`{"preferred_name":5,"default_owner":"u"}`), 422, "preferred_name"},
		{"no letters in name", nil, create(`{"preferred_name":"!!!","default_owner":"u"}`), 422, "preferred_name"},
		{"name missing", nil, create(`{"default_owner":"u"}`), 422, "preferred_name"},
		{"name too long", nil, create(`{"preferred_name":"` + strings.Repeat("a", 61) + `","default_owner":"u"}`), 422, "preferred_name"},
		{"owner missing", nil, create(`{"preferred_name":"a"}`), 422, "default_owner"},
		{"owner with space", nil, create(`{"preferred_name":"a","default_owner":"a b"}`), 422, "default_owner"},
		{"owner with slash", nil, create(`{"preferred_name":"a","default_owner":"a/b"}`), 422, "default_owner"},
		{"text/plain", nil, req{method: "POST", path: "/workspaces", user: "admin", body: `{}`, contentType: "text/plain"}, 415, "Content-Type"},
		{"no content type", nil, req{method: "POST", path: "/workspaces", user: "admin", body: `{}`, contentType: "-"}, 415, "Content-Type"},
		{"too large", small, create(big), 413, ""},
		{"bad idempotency key", nil, req{method: "POST", path: "/workspaces", user: "admin",
			body: `{"preferred_name":"a","default_owner":"u"}`, header: map[string]string{"Idempotency-Key": "a b"}}, 422, "Idempotency-Key"},
		{"member bad role", nil, addMember(`{"username":"bob","role":"root"}`), 422, "role"},
		{"member no username", nil, addMember(`{"role":"ws_admin"}`), 422, "username"},
		{"member unknown field", nil, addMember(`{"username":"bob","admin":true}`), 422, "admin"},
		{"member malformed", nil, addMember(`{"username":`), 400, ""},
		{"member wrong content type", nil, req{method: "POST", path: "/workspaces/ws-a/members", user: "admin", body: `{}`, contentType: "application/xml"}, 415, "Content-Type"},
		{"member too large", small, addMember(`{"username":"` + strings.Repeat("b", 200) + `"}`), 413, ""},
		{"remove bad username", nil, req{method: "DELETE", path: "/workspaces/ws-a/members/a%20b", user: "admin"}, 422, "username"},
		{"get invalid name", nil, req{method: "GET", path: "/workspaces/WS_A", user: "admin"}, 422, "name"},
		{"delete invalid name", nil, req{method: "DELETE", path: "/workspaces/ws-", user: "admin"}, 422, "name"},
		{"delete bad purge", nil, req{method: "DELETE", path: "/workspaces/ws-a?purge=maybe", user: "admin"}, 422, "purge"},
		{"release invalid name", nil, req{method: "DELETE", path: "/names/WS", user: "admin"}, 422, "name"},
		{"delete bad force", nil, req{method: "DELETE", path: "/workspaces/ws-a?force=yes%20please", user: "admin"}, 422, "force"},
		{"retry unknown field", nil, req{method: "POST", path: "/workspaces/ws-a/retry", user: "admin", body: `{"force":true}`}, 422, "force"},
		{"list limit zero", nil, req{method: "GET", path: "/workspaces?limit=0", user: "admin"}, 422, "limit"},
		{"list limit text", nil, req{method: "GET", path: "/workspaces?limit=ten", user: "admin"}, 422, "limit"},
		{"list limit too big", nil, req{method: "GET", path: "/workspaces?limit=501", user: "admin"}, 422, "limit"},
		{"list bad status", nil, req{method: "GET", path: "/workspaces?status=gone", user: "admin"}, 422, "status"},
		{"list bad cursor", nil, req{method: "GET", path: "/workspaces?cursor=%21%21", user: "admin"}, 422, "cursor"},
		{"list bad owner", nil, req{method: "GET", path: "/workspaces?owner=a%20b", user: "admin"}, 422, "owner"},
		{"events bad cursor", nil, req{method: "GET", path: "/workspaces/ws-a/events?cursor=abc", user: "admin"}, 422, "cursor"},
		{"events bad limit", nil, req{method: "GET", path: "/workspaces/ws-a/events?limit=-1", user: "admin"}, 422, "limit"},
		{"unknown route", nil, req{method: "GET", path: "/nope", user: "admin"}, 404, ""},
		{"no token", nil, req{method: "POST", path: "/workspaces", body: `{"preferred_name":"a","default_owner":"u"}`}, 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.h
			if h == nil {
				h = s.h
			}
			r := s.do(h, tc.rq)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if e := r.errBody(t); e.Field != tc.field {
				t.Errorf("field %q, want %q (%s)", e.Field, tc.field, e.Error)
			}
		})
	}
	if n := s.msgs(events.CommandsStream); n != 0 {
		t.Fatalf("%d commands published by bad requests", n)
	}
	if _, err := s.names.Get(s.ctx, "ws-a"); !events.IsNotFound(err) {
		t.Fatalf("a bad request reserved a name: %v", err)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	s := newStack(t)
	r := s.call(req{method: "PUT", path: "/workspaces", user: "admin", body: `{}`})
	if r.status != http.StatusMethodNotAllowed {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	allow := r.header.Get("Allow")
	if !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Fatalf("Allow %q", allow)
	}
	r.errBody(t)
}

func TestCreateThenReadYourWriteAndProjection(t *testing.T) {
	s := newStack(t)
	creds := map[string]string{"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk", "AWS_ENDPOINT_URL": "http://127.0.0.1:9000",
		"AWS_REGION": "us-east-1", "bucketname": "ws-alice", "access": "ak", "secret": "sk", "endpoint": "http://127.0.0.1:9000", "region": "us-east-1"}
	s.deps.Credentials = testCredentials{"ws-alice": creds}
	s.h = s.handler(Config{}, s.deps)

	r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"Alice","default_owner":"alice"}`})
	if r.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var acc acceptedBody
	r.json(t, &acc)
	if acc.Name != "ws-alice" || acc.Status != "provisioning" || acc.CommandID == "" {
		t.Fatalf("answer %+v", acc)
	}
	if loc := r.header.Get("Location"); loc != "/workspaces/ws-alice" {
		t.Fatalf("Location %q", loc)
	}
	env := s.lastCommand("workspace.cmd.ws-alice.create")
	if env.ID != acc.CommandID || env.Actor != "admin" || env.Source != Source || env.CorrelationID != env.ID || env.Type != events.TypeCreate {
		t.Fatalf("envelope %+v", env)
	}
	if string(env.Data) != `{"preferred_name":"Alice","default_owner":"alice"}` {
		t.Fatalf("data %s", env.Data)
	}

	// Read-your-write: no event yet, the reservation answers.
	var got workspaceBody
	r = s.call(req{method: "GET", path: "/workspaces/ws-alice", user: "admin"})
	if r.status != http.StatusOK {
		t.Fatalf("get: %d %s", r.status, r.body)
	}
	r.json(t, &got)
	if got.Status != "provisioning" || got.Owner != "alice" || got.Storage != nil || got.Members == nil || got.Endpoints == nil {
		t.Fatalf("get before events: %s", r.body)
	}
	// Anyone else is no member before the worker says so.
	if r := s.call(req{method: "GET", path: "/workspaces/ws-alice", user: "bob"}); r.status != http.StatusForbidden {
		t.Fatalf("another user before membership: %d", r.status)
	}

	s.emit("ws-alice", &events.MemberAdded{Username: "alice", Role: events.RoleAdmin})
	s.emit("ws-alice", &events.StatusChanged{Status: events.StatusReady, Previous: events.StatusProvisioning, Owner: "alice",
		Storage: &events.Storage{Bucket: "ws-alice", Endpoint: "http://127.0.0.1:9000", Region: "us-east-1"}})
	s.waitFor("ws-alice", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusReady })

	r = s.call(req{method: "GET", path: "/workspaces/ws-alice", user: "alice"})
	if r.status != http.StatusOK {
		t.Fatalf("member get: %d %s", r.status, r.body)
	}
	got = workspaceBody{}
	r.json(t, &got)
	if got.Status != "ready" || got.Storage == nil || got.Storage.Credentials["AWS_SECRET_ACCESS_KEY"] != "sk" ||
		!slices.Equal(got.Members, []memberBody{{Username: "alice", Role: "ws_admin", Kind: "user"}}) {
		t.Fatalf("ready workspace: %s", r.body)
	}
	if cc := r.header.Get("Cache-Control"); cc != "no-store" {
		t.Fatalf("Cache-Control %q on credentials", cc)
	}

	var list listBody
	s.call(req{method: "GET", path: "/workspaces?status=ready", user: "alice"}).json(t, &list)
	if len(list.Items) != 1 || list.Items[0].Name != "ws-alice" || list.NextCursor != nil {
		t.Fatalf("list: %+v", list)
	}
}

// The default owner reads their new workspace at once, before the
// worker has made them a member, and only until it has: once members
// exist and they are not one (removed), they read nothing.
func TestTheDefaultOwnerReadsTheirNewWorkspaceAtOnce(t *testing.T) {
	s := newStack(t)
	r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"mine","default_owner":"alice"}`})
	if r.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	var got workspaceBody
	r = s.call(req{method: "GET", path: "/workspaces/ws-mine", user: "alice"})
	if r.status != http.StatusOK {
		t.Fatalf("owner right after the 202: %d %s", r.status, r.body)
	}
	if r.json(t, &got); got.Status != events.StatusProvisioning || got.Owner != "alice" {
		t.Fatalf("owner reads %s", r.body)
	}
	s.emit("ws-mine", &events.StatusChanged{Status: events.StatusProvisioning, Owner: "alice"})
	s.waitFor("ws-mine", func(ws readmodel.Workspace, ok bool) bool { return ok })
	if r := s.call(req{method: "GET", path: "/workspaces/ws-mine", user: "alice"}); r.status != http.StatusOK {
		t.Fatalf("owner once projected: %d %s", r.status, r.body)
	}
	var list listBody
	if s.call(req{method: "GET", path: "/workspaces", user: "alice"}).json(t, &list); len(list.Items) != 1 {
		t.Fatalf("owner's list: %+v", list)
	}
	for _, user := range []string{"bob", ""} {
		if r := s.call(req{method: "GET", path: "/workspaces/ws-mine", user: user}); r.status == http.StatusOK {
			t.Fatalf("%q reads another's new workspace", user)
		}
	}
	s.emit("ws-mine", &events.MemberAdded{Username: "carol", Role: events.RoleAdmin})
	s.emit("ws-mine", &events.StatusChanged{Status: events.StatusFailed, Owner: "alice"})
	s.waitFor("ws-mine", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusFailed })
	if r := s.call(req{method: "GET", path: "/workspaces/ws-mine", user: "alice"}); r.status != http.StatusForbidden {
		t.Fatalf("owner who is not among the members: %d", r.status)
	}
}

// A DELETE's 202 shows at once: the next read says deleting, even while
// the worker has not started on it, and the worker's news take over.
func TestDeleteReadsDeletingAtOnce(t *testing.T) {
	s := newStack(t)
	if r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"gone","default_owner":"alice"}`}); r.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	s.emit("ws-gone", &events.MemberAdded{Username: "alice", Role: events.RoleAdmin})
	s.emit("ws-gone", &events.StatusChanged{Status: events.StatusReady, Owner: "alice"})
	s.waitFor("ws-gone", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusReady })
	// A workspace made without the API has no reservation; it reads the same.
	s.emit("ws-direct", &events.StatusChanged{Status: events.StatusReady})
	s.waitFor("ws-direct", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusReady })
	status := func(name, user string) string {
		t.Helper()
		var got workspaceBody
		r := s.call(req{method: "GET", path: "/workspaces/" + name, user: user})
		if r.status != http.StatusOK {
			t.Fatalf("get %s: %d %s", name, r.status, r.body)
		}
		r.json(t, &got)
		return got.Status
	}
	for _, name := range []string{"ws-gone", "ws-direct"} {
		if r := s.call(req{method: "DELETE", path: "/workspaces/" + name, user: "admin"}); r.status != http.StatusAccepted {
			t.Fatalf("delete %s: %d %s", name, r.status, r.body)
		}
		if got := status(name, "admin"); got != events.StatusDeleting {
			t.Fatalf("%s right after the delete's 202 reads %q", name, got)
		}
	}
	if got := status("ws-gone", "alice"); got != events.StatusDeleting {
		t.Fatalf("member reads %q", got)
	}
	// The worker fails the delete: its news are newer than the mark.
	s.emit("ws-gone", &events.StatusChanged{Status: events.StatusDeleting, Previous: events.StatusReady})
	s.emit("ws-gone", &events.StatusChanged{Status: events.StatusFailed, Previous: events.StatusDeleting})
	s.waitFor("ws-gone", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusFailed })
	if got := status("ws-gone", "admin"); got != events.StatusFailed {
		t.Fatalf("after the worker's news: %q", got)
	}
}

// staleView answers one workspace from an old snapshot: a read model
// that lags behind the events.
type staleView struct {
	Workspaces
	old readmodel.Workspace
}

func (v staleView) Get(name string) (readmodel.Workspace, bool) {
	if name == v.old.Name {
		return v.old, true
	}
	return v.Workspaces.Get(name)
}

// A delete accepted on a stale read model, after the workspace was
// deleted and its name released, must not hold the name: once the read
// model catches up, it reads deleted and can be created again.
func TestALateDeleteDoesNotHoldTheName(t *testing.T) {
	s := newStack(t)
	s.emit("ws-late", &events.StatusChanged{Status: events.StatusReady})
	s.waitFor("ws-late", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusReady })
	old, _ := s.reader.Get("ws-late")
	s.emit("ws-late", &events.StatusChanged{Status: events.StatusDeleted})
	s.waitFor("ws-late", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusDeleted })
	d := s.deps
	d.Workspaces = staleView{Workspaces: s.reader, old: old}
	if r := s.do(s.handler(Config{}, d), req{method: "DELETE", path: "/workspaces/ws-late", user: "admin"}); r.status != http.StatusAccepted {
		t.Fatalf("delete on the stale view: %d %s", r.status, r.body)
	}
	var got workspaceBody
	if s.call(req{method: "GET", path: "/workspaces/ws-late", user: "admin"}).json(t, &got); got.Status != events.StatusDeleted {
		t.Fatalf("reads %q once the read model caught up", got.Status)
	}
	if r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"late","default_owner":"u"}`}); r.status != http.StatusAccepted {
		t.Fatalf("create again: %d %s", r.status, r.body)
	}
}

func TestFailedWorkspaceShowsErrorAndRetries(t *testing.T) {
	s := newStack(t)
	s.put(readmodel.Workspace{Name: "ws-f", Status: events.StatusFailed, LastError: "minio down", FailedStep: "create_bucket"})
	s.put(readmodel.Workspace{Name: "ws-ok", Status: events.StatusReady, LastError: "stale", FailedStep: "stale"})
	s.waitFor("ws-ok", func(_ readmodel.Workspace, ok bool) bool { return ok })
	var got map[string]any
	s.call(req{method: "GET", path: "/workspaces/ws-f", user: "admin"}).json(t, &got)
	if got["last_error"] != "minio down" || got["failed_step"] != "create_bucket" {
		t.Fatalf("failed workspace: %v", got)
	}
	got = nil
	s.call(req{method: "GET", path: "/workspaces/ws-ok", user: "admin"}).json(t, &got)
	if _, ok := got["last_error"]; ok {
		t.Fatalf("last_error shown for a ready workspace: %v", got)
	}
	if r := s.call(req{method: "POST", path: "/workspaces/ws-ok/retry", user: "admin"}); r.status != http.StatusConflict {
		t.Fatalf("retry of a ready workspace: %d %s", r.status, r.body)
	}
	if r := s.call(req{method: "POST", path: "/workspaces/ws-f/retry", user: "admin"}); r.status != http.StatusAccepted {
		t.Fatalf("retry: %d %s", r.status, r.body)
	}
	if env := s.lastCommand("workspace.cmd.ws-f.retry"); env.Type != events.TypeRetry {
		t.Fatalf("retry envelope %+v", env)
	}
}

func TestIdempotencyKey(t *testing.T) {
	s := newStack(t)
	post := func(key, body string) resp {
		return s.call(req{method: "POST", path: "/workspaces", user: "admin", body: body, header: map[string]string{"Idempotency-Key": key}})
	}
	body := `{"preferred_name":"idem","default_owner":"u"}`
	first := post("k1", body)
	if first.status != http.StatusAccepted {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	again := post("k1", `{ "default_owner": "u", "preferred_name": "idem" }`) // same request, other spelling
	if again.status != http.StatusAccepted || !bytes.Equal(again.body, first.body) || again.header.Get("Location") != first.header.Get("Location") {
		t.Fatalf("repeat: %d %s, want %s", again.status, again.body, first.body)
	}
	if again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatal("repeat not marked as replayed")
	}
	if n := s.msgs(events.CommandsStream); n != 1 {
		t.Fatalf("%d commands for one idempotent request", n)
	}
	r := post("k1", `{"preferred_name":"other","default_owner":"u"}`)
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("key reuse: %d %s", r.status, r.body)
	}
	if e := r.errBody(t); e.Field != "Idempotency-Key" || e.Error != "Idempotency-Key reused for a different request" {
		t.Fatalf("key reuse body %+v", e)
	}
	r = s.call(req{method: "POST", path: "/workspaces/ws-idem/members", user: "admin", body: `{"username":"bob"}`,
		header: map[string]string{"Idempotency-Key": "k1"}})
	if r.status != http.StatusUnprocessableEntity {
		t.Fatalf("same key, other route: %d %s", r.status, r.body)
	}
	// Keys are per caller: another admin's k1 is another request.
	r = s.call(req{method: "POST", path: "/workspaces", user: "admin2", body: `{"preferred_name":"idem2","default_owner":"u"}`,
		header: map[string]string{"Idempotency-Key": "k1"}})
	if r.status != http.StatusAccepted {
		t.Fatalf("other caller, same key: %d %s", r.status, r.body)
	}
	if n := s.msgs(events.CommandsStream); n != 2 {
		t.Fatalf("%d commands, want 2", n)
	}
	// Without a key a second create is a conflict.
	r = s.call(req{method: "POST", path: "/workspaces", user: "admin", body: body})
	if r.status != http.StatusConflict {
		t.Fatalf("second create: %d %s", r.status, r.body)
	}
	if e := r.errBody(t); e.Field != "preferred_name" || e.Error != "workspace ws-idem already exists" {
		t.Fatalf("conflict body %+v", e)
	}
}

func TestIdempotentRetryAfterLostAnswer(t *testing.T) {
	s := newStack(t)
	body := `{"preferred_name":"lost","default_owner":"u"}`
	key := map[string]string{"Idempotency-Key": "k"}
	first := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: body, header: key})
	if first.status != http.StatusAccepted {
		t.Fatalf("first: %d %s", first.status, first.body)
	}
	// The stored answer is lost (a crash between publish and store):
	// the retry finds its own reservation and JetStream drops the duplicate.
	keys, err := s.idem.ListKeys(s.ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range keys.Keys() {
		if err := s.idem.Purge(s.ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	again := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: body, header: key})
	if again.status != http.StatusAccepted || !bytes.Equal(again.body, first.body) {
		t.Fatalf("retry: %d %s, want %s", again.status, again.body, first.body)
	}
	if n := s.msgs(events.CommandsStream); n != 1 {
		t.Fatalf("%d commands stored, want 1", n)
	}
}

func TestConcurrentIdempotentCreates(t *testing.T) {
	s := newStack(t)
	const n = 16
	bodies := make([][]byte, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"race","default_owner":"u"}`,
				header: map[string]string{"Idempotency-Key": "same"}})
			if r.status != http.StatusAccepted {
				t.Errorf("request %d: %d %s", i, r.status, r.body)
			}
			bodies[i] = r.body
		})
	}
	wg.Wait()
	for i := range bodies {
		if !bytes.Equal(bodies[i], bodies[0]) {
			t.Fatalf("answers differ: %s vs %s", bodies[i], bodies[0])
		}
	}
	if got := s.msgs(events.CommandsStream); got != 1 {
		t.Fatalf("%d commands stored, want 1", got)
	}
}

func TestConcurrentCreatesOneWins(t *testing.T) {
	s := newStack(t)
	const n = 16
	codes := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			codes <- s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"race","default_owner":"u"}`}).status
		})
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusAccepted] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("answers %v", count)
	}
	if got := s.msgs(events.CommandsStream); got != 1 {
		t.Fatalf("%d commands stored, want 1", got)
	}
}

func TestNameReusedAfterDeletion(t *testing.T) {
	s := newStack(t)
	create := req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"again","default_owner":"u"}`}
	if r := s.call(create); r.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	s.emit("ws-again", &events.StatusChanged{Status: events.StatusReady})
	s.waitFor("ws-again", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusReady })
	if r := s.call(create); r.status != http.StatusConflict {
		t.Fatalf("create over a live workspace: %d", r.status)
	}
	if r := s.call(req{method: "DELETE", path: "/workspaces/ws-again?purge=true", user: "admin"}); r.status != http.StatusAccepted {
		t.Fatalf("delete: %d %s", r.status, r.body)
	}
	if env := s.lastCommand("workspace.cmd.ws-again.delete"); string(env.Data) != `{"purge":true}` {
		t.Fatalf("delete data %s", env.Data)
	}
	s.emit("ws-again", &events.StatusChanged{Status: events.StatusDeleted})
	s.waitFor("ws-again", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusDeleted })
	if r := s.call(req{method: "DELETE", path: "/workspaces/ws-again", user: "admin"}); r.status != http.StatusConflict {
		t.Fatalf("delete of a deleted workspace: %d", r.status)
	}
	if r := s.call(create); r.status != http.StatusAccepted {
		t.Fatalf("re-create: %d %s", r.status, r.body)
	}
	var got workspaceBody
	s.call(req{method: "GET", path: "/workspaces/ws-again", user: "admin"}).json(t, &got)
	if got.Status != events.StatusProvisioning {
		t.Fatalf("re-created workspace reads %q", got.Status)
	}
	// The new claim is not up for grabs while its create is pending.
	if r := s.call(create); r.status != http.StatusConflict {
		t.Fatalf("third create: %d", r.status)
	}
}

func TestCreateOverWorkspaceMadeWithoutTheAPI(t *testing.T) {
	s := newStack(t)
	s.emit("ws-direct", &events.StatusChanged{Status: events.StatusProvisioning})
	s.waitFor("ws-direct", func(_ readmodel.Workspace, ok bool) bool { return ok })
	r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"direct","default_owner":"u"}`})
	if r.status != http.StatusConflict {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	if _, err := s.names.Get(s.ctx, "ws-direct"); !events.IsNotFound(err) {
		t.Fatalf("refused create left a reservation: %v", err)
	}
}

// brokenPublisher fails like a JetStream outage.
type brokenPublisher struct{}

func (brokenPublisher) Publish(context.Context, events.Envelope) (events.Published, error) {
	return events.Published{}, errors.New("nats: no responders available for request")
}

func TestPublishFailureReleasesTheName(t *testing.T) {
	s := newStack(t)
	d := s.deps
	d.Publisher = brokenPublisher{}
	broken := s.handler(Config{}, d)
	create := req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"later","default_owner":"u"}`}
	r := s.do(broken, create)
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("create during outage: %d %v %s", r.status, r.header, r.body)
	}
	r.errBody(t)
	if r := s.call(req{method: "GET", path: "/workspaces/ws-later", user: "admin"}); r.status != http.StatusNotFound {
		t.Fatalf("get after failed create: %d", r.status)
	}
	if r := s.call(create); r.status != http.StatusAccepted {
		t.Fatalf("create after the outage: %d %s", r.status, r.body)
	}
}

func TestPaginationWalksEveryWorkspace(t *testing.T) {
	s := newStack(t)
	const total = 120
	var mine []string
	for i := range total {
		name := fmt.Sprintf("ws-p%03d", i)
		ws := readmodel.Workspace{Name: name, Status: events.StatusReady, Owner: "o"}
		if i%3 == 0 {
			ws.Members = []readmodel.Member{member("carol", events.RoleAccess)}
			mine = append(mine, name)
		}
		s.put(ws)
	}
	eventually(t, "all workspaces projected", func() bool { return s.reader.Len() == total })
	walk := func(user string, limit int) []string {
		var names []string
		cursor := ""
		for pages := 0; ; pages++ {
			if pages > total {
				t.Fatal("pagination does not end")
			}
			var page listBody
			r := s.call(req{method: "GET", path: fmt.Sprintf("/workspaces?limit=%d&cursor=%s", limit, cursor), user: user})
			if r.status != http.StatusOK {
				t.Fatalf("page: %d %s", r.status, r.body)
			}
			r.json(t, &page)
			if len(page.Items) > limit {
				t.Fatalf("%d items on a page of %d", len(page.Items), limit)
			}
			for _, it := range page.Items {
				names = append(names, it.Name)
			}
			if page.NextCursor == nil {
				return names
			}
			cursor = *page.NextCursor
		}
	}
	all := walk("admin", 25)
	if len(all) != total || !slices.IsSorted(all) || len(slices.Compact(slices.Clone(all))) != total {
		t.Fatalf("admin walked %d names", len(all))
	}
	if got := walk("carol", 7); !slices.Equal(got, mine) {
		t.Fatalf("carol sees %v, want %v", got, mine)
	}
	if got := walk("dave", 10); len(got) != 0 {
		t.Fatalf("a stranger sees %v", got)
	}
	var page listBody
	s.call(req{method: "GET", path: "/workspaces", user: "admin"}).json(t, &page)
	if len(page.Items) != DefaultPageSize || page.NextCursor == nil {
		t.Fatalf("default page: %d items", len(page.Items))
	}
}

func TestAuthorization(t *testing.T) {
	s := newStack(t)
	s.put(readmodel.Workspace{Name: "ws-a", Status: events.StatusFailed, Owner: "owner",
		Members: []readmodel.Member{member("owner", events.RoleAdmin), member("reader", events.RoleAccess)}})
	s.put(readmodel.Workspace{Name: "ws-b", Status: events.StatusReady, Owner: "other",
		Members: []readmodel.Member{member("other", events.RoleAdmin)}})
	s.waitFor("ws-b", func(_ readmodel.Workspace, ok bool) bool { return ok })
	users := []string{"admin", "owner", "reader", "stranger"}
	routes := []struct {
		rq   req
		want [4]int // admin, owner (ws_admin), reader (ws_access), stranger
	}{
		{req{method: "GET", path: "/workspaces/ws-a"}, [4]int{200, 200, 200, 403}},
		{req{method: "GET", path: "/workspaces/ws-missing"}, [4]int{404, 404, 404, 404}},
		{req{method: "GET", path: "/workspaces/ws-a/events"}, [4]int{200, 200, 200, 403}},
		{req{method: "GET", path: "/workspaces"}, [4]int{200, 200, 200, 200}},
		{req{method: "POST", path: "/workspaces", body: `{"preferred_name":"new","default_owner":"u"}`}, [4]int{202, 403, 403, 403}},
		{req{method: "POST", path: "/workspaces/ws-a/members", body: `{"username":"x","role":"ws_access"}`}, [4]int{202, 202, 403, 403}},
		{req{method: "POST", path: "/workspaces/ws-missing/members", body: `{"username":"x"}`}, [4]int{404, 404, 404, 404}},
		{req{method: "DELETE", path: "/workspaces/ws-a/members/x"}, [4]int{202, 202, 403, 403}},
		{req{method: "POST", path: "/workspaces/ws-a/retry"}, [4]int{202, 403, 403, 403}},
		{req{method: "DELETE", path: "/workspaces/ws-a"}, [4]int{202, 403, 403, 403}},
		{req{method: "DELETE", path: "/workspaces/ws-missing"}, [4]int{404, 404, 404, 404}},
		{req{method: "GET", path: "/workspaces/ws-b"}, [4]int{200, 403, 403, 403}},
	}
	for _, rt := range routes {
		for i, user := range users {
			rq := rt.rq
			rq.user = user
			// A fresh name per create, so each admin create is a 202.
			rq.body = strings.Replace(rq.body, `"new"`, `"new-`+user+`"`, 1)
			t.Run(fmt.Sprintf("%s %s as %s", rq.method, rq.path, user), func(t *testing.T) {
				r := s.call(rq)
				if r.status != rt.want[i] {
					t.Fatalf("status %d, want %d: %s", r.status, rt.want[i], r.body)
				}
				if r.status >= 400 {
					r.errBody(t)
				}
			})
		}
	}
	for _, rq := range []req{{method: "GET", path: "/workspaces"}, {method: "GET", path: "/workspaces/ws-a"}, {method: "DELETE", path: "/workspaces/ws-a"}} {
		r := s.call(rq)
		if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Bearer realm="workspaces"`) {
			t.Fatalf("%s %s without a token: %d %q", rq.method, rq.path, r.status, r.header.Get("WWW-Authenticate"))
		}
		r.errBody(t)
	}
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/openapi.yaml"} {
		if r := s.call(req{method: "GET", path: path}); r.status != http.StatusOK {
			t.Fatalf("%s without a token: %d", path, r.status)
		}
	}
}

func TestRemovedMemberLosesAccessAtOnce(t *testing.T) {
	s := newStack(t)
	s.emit("ws-m", &events.StatusChanged{Status: events.StatusReady, Owner: "owner"})
	s.emit("ws-m", &events.MemberAdded{Username: "bob", Role: events.RoleAccess})
	s.waitFor("ws-m", func(ws readmodel.Workspace, _ bool) bool { return ws.RoleOf("bob") != "" })
	if r := s.call(req{method: "GET", path: "/workspaces/ws-m", user: "bob"}); r.status != http.StatusOK {
		t.Fatalf("member: %d", r.status)
	}
	s.emit("ws-m", &events.MemberRemoved{Username: "bob"})
	s.waitFor("ws-m", func(ws readmodel.Workspace, _ bool) bool { return ws.RoleOf("bob") == "" })
	if r := s.call(req{method: "GET", path: "/workspaces/ws-m", user: "bob"}); r.status != http.StatusForbidden {
		t.Fatalf("removed member: %d", r.status)
	}
}

func TestMembersCommands(t *testing.T) {
	s := newStack(t)
	s.put(readmodel.Workspace{Name: "ws-a", Status: events.StatusReady, Members: []readmodel.Member{member("owner", events.RoleAdmin)}})
	s.put(readmodel.Workspace{Name: "ws-gone", Status: events.StatusDeleting})
	s.waitFor("ws-gone", func(_ readmodel.Workspace, ok bool) bool { return ok })
	r := s.call(req{method: "POST", path: "/workspaces/ws-a/members", user: "owner", body: `{"username":"bob"}`})
	if r.status != http.StatusAccepted {
		t.Fatalf("add: %d %s", r.status, r.body)
	}
	env := s.lastCommand("workspace.cmd.ws-a.member.add")
	if string(env.Data) != `{"username":"bob","role":"ws_access"}` || env.Actor != "owner" {
		t.Fatalf("add command %+v %s", env, env.Data)
	}
	r = s.call(req{method: "DELETE", path: "/workspaces/ws-a/members/bob", user: "owner"})
	if r.status != http.StatusAccepted {
		t.Fatalf("remove: %d %s", r.status, r.body)
	}
	if env := s.lastCommand("workspace.cmd.ws-a.member.remove"); string(env.Data) != `{"username":"bob"}` {
		t.Fatalf("remove data %s", env.Data)
	}
	if r := s.call(req{method: "POST", path: "/workspaces/ws-gone/members", user: "admin", body: `{"username":"bob"}`}); r.status != http.StatusConflict {
		t.Fatalf("add to a workspace being deleted: %d", r.status)
	}
}

func TestHistoryPages(t *testing.T) {
	s := newStack(t)
	if r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"h","default_owner":"owner"}`}); r.status != http.StatusAccepted {
		t.Fatalf("create: %d", r.status)
	}
	s.emit("ws-h", &events.StatusChanged{Status: events.StatusProvisioning, Owner: "owner"})
	s.emit("ws-h", &events.MemberAdded{Username: "owner", Role: events.RoleAdmin})
	s.waitFor("ws-h", func(ws readmodel.Workspace, _ bool) bool { return ws.RoleOf("owner") != "" })
	if r := s.call(req{method: "POST", path: "/workspaces/ws-h/members", user: "owner", body: `{"username":"bob"}`}); r.status != http.StatusAccepted {
		t.Fatalf("add: %d", r.status)
	}
	s.emit("ws-h", &events.MemberAdded{Username: "bob", Role: events.RoleAccess})
	s.emit("ws-other", &events.StatusChanged{Status: events.StatusProvisioning}) // not ws-h's
	want := []string{events.TypeCreate, events.TypeStatusChanged, events.TypeMemberAdded, events.TypeMemberAdd, events.TypeMemberAdded}

	var types []string
	var last time.Time
	cursor := ""
	for pages := 0; ; pages++ {
		if pages > len(want) {
			t.Fatal("history does not end")
		}
		var page historyBody
		r := s.call(req{method: "GET", path: "/workspaces/ws-h/events?limit=2&cursor=" + cursor, user: "owner"})
		if r.status != http.StatusOK {
			t.Fatalf("history: %d %s", r.status, r.body)
		}
		r.json(t, &page)
		for _, it := range page.Items {
			env, err := events.Parse(it.Event, s.schema)
			if err != nil || env.Subject != "ws-h" {
				t.Fatalf("history item %s: %v", it.Event, err)
			}
			if it.Time.Before(last) {
				t.Fatalf("history out of order at %s", env.Type)
			}
			last = it.Time
			types = append(types, env.Type)
		}
		if page.NextCursor == nil {
			break
		}
		cursor = *page.NextCursor
	}
	if !slices.Equal(types, want) {
		t.Fatalf("history %v, want %v", types, want)
	}
	// No consumer is left behind.
	for _, stream := range []string{events.CommandsStream, events.EventsStream} {
		st, _ := s.js.Stream(s.ctx, stream)
		info, _ := st.Info(s.ctx)
		if n := info.State.Consumers; n > 1 { // the projection's durable on the events stream
			t.Fatalf("%d consumers left on %s", n, stream)
		}
	}
}

func TestReadinessAndMetrics(t *testing.T) {
	s := newStack(t)
	d := s.deps
	d.Ready = func(context.Context) error { return errors.New("read model still loading") }
	core, logs := observer.New(zap.DebugLevel)
	d.Log = zap.New(core)
	if r := s.do(s.handler(Config{}, d), req{method: "GET", path: "/readyz"}); r.status != http.StatusServiceUnavailable {
		t.Fatalf("readyz while not ready: %d", r.status)
	}
	// Not ready yet is how every start begins: info, not an error.
	if got := logs.FilterField(zap.String("path", "/readyz")).All(); len(got) != 1 || got[0].Level != zap.InfoLevel {
		t.Fatalf("readyz 503 logged as %+v, want one entry at info", got)
	}
	if r := s.call(req{method: "GET", path: "/readyz"}); r.status != http.StatusOK {
		t.Fatalf("readyz: %d", r.status)
	}
	s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"m","default_owner":"u"}`})
	s.call(req{method: "GET", path: "/nowhere"})
	r := s.call(req{method: "GET", path: "/metrics"})
	for _, want := range []string{
		`workspace_api_requests_total{code="202",route="POST /workspaces"} 1`,
		`workspace_api_requests_total{code="404",route="unmatched"} 1`,
		`workspace_api_commands_published_total{type="workspace.create"} 1`,
		`workspace_api_request_duration_seconds_count{code="202",route="POST /workspaces"} 1`,
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{}.WithDefaults()
	if err := c.Validate(); err != nil || c.MaxBodyBytes != 64<<10 || c.DefaultPageSize != 50 || c.MaxPageSize != 500 || c.AdminRole != "workspace-api:admin" {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	bad := Config{DefaultPageSize: 100, MaxPageSize: 10}.WithDefaults()
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "max page size") {
		t.Fatalf("max below default: %v", err)
	}
	if _, err := New(Config{}, Deps{}); err == nil || !strings.Contains(err.Error(), "Publisher") {
		t.Fatalf("missing deps: %v", err)
	}
}

// On a three-server cluster the history is read without a consumer, so
// reads right after writes never answer 503 (they did 4-10% of the time
// when each page made and fetched a consumer at once).
func TestHistoryOnAClusterAnswersEveryRead(t *testing.T) {
	s := newStackOn(t, bustest.StartCluster(t))
	if r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"hc","default_owner":"owner"}`}); r.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	for i := range 40 {
		s.emit("ws-hc", &events.StepCompleted{Saga: "create", Step: fmt.Sprintf("step_%d", i)})
		var page historyBody
		r := s.call(req{method: "GET", path: "/workspaces/ws-hc/events?limit=100", user: "admin"})
		if r.status != http.StatusOK {
			t.Fatalf("read %d: %d %s", i, r.status, r.body)
		}
		if r.json(t, &page); len(page.Items) != i+2 { // the create command and every event so far
			t.Fatalf("read %d: %d items, want %d", i, len(page.Items), i+2)
		}
	}
}
