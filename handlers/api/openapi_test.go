package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/shares"
)

func loadOpenAPI(t *testing.T) *openapi3.T {
	t.Helper()
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(OpenAPI())
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		t.Fatalf("openapi.yaml is not valid: %v", err)
	}
	return doc
}

// TestOpenAPIListsEveryRoute checks both directions: every operation of
// the document is served, and every route served is documented.
func TestOpenAPIListsEveryRoute(t *testing.T) {
	doc := loadOpenAPI(t)
	s := newStack(t)
	documented := map[string]bool{}
	fill := strings.NewReplacer("{name}", "ws-a", "{username}", "bob")
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
			r := s.call(req{method: method, path: fill.Replace(path), user: "admin"})
			if r.status == http.StatusMethodNotAllowed ||
				(r.status == http.StatusNotFound && strings.HasPrefix(r.errBody(t).Error, "no such route")) {
				t.Errorf("%s %s is documented but not served (%d)", method, path, r.status)
			}
		}
	}
	served := (&server{}).routes(nil)
	for _, rt := range served {
		if !documented[rt.pattern] {
			t.Errorf("%s is served but not documented", rt.pattern)
		}
	}
	if len(served) != len(documented) {
		t.Errorf("%d routes served, %d documented", len(served), len(documented))
	}
}

// TestResponsesMatchOpenAPI sends real requests, success and failure,
// and validates each request and answer against the document.
func TestResponsesMatchOpenAPI(t *testing.T) {
	doc := loadOpenAPI(t)
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	s := newStack(t)
	s.deps.Credentials = testCredentials{"ws-a": {"AWS_ACCESS_KEY_ID": "ak", "AWS_SECRET_ACCESS_KEY": "sk",
		"AWS_ENDPOINT_URL": "http://127.0.0.1:9000", "AWS_REGION": "us-east-1", "bucketname": "ws-a", "access": "ak",
		"secret": "sk", "endpoint": "http://127.0.0.1:9000", "region": "us-east-1"}}
	objs := &fakeObjects{data: map[string][]byte{"ws-a/a.txt": []byte("a")}}
	s.deps.Objects, s.deps.Shares, s.deps.Usage = objs, shares.NewKV(s.kv(events.SharesBucket)), fakeUsage{}
	s.h = s.handler(Config{}, s.deps)
	s.put(readmodel.Workspace{Name: "ws-a", Status: events.StatusReady, Owner: "owner", Step: "done",
		Members: []readmodel.Member{member("owner", events.RoleAdmin)}})
	s.put(readmodel.Workspace{Name: "ws-f", Status: events.StatusFailed, LastError: "boom", FailedStep: "create_bucket"})
	s.waitFor("ws-f", func(_ readmodel.Workspace, ok bool) bool { return ok })
	s.emit("ws-a", &events.StepCompleted{Saga: "create", Step: "create_bucket"})

	valid := []req{
		{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"doc","default_owner":"owner"}`,
			header: map[string]string{"Idempotency-Key": "doc-1"}},
		{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"doc","default_owner":"owner"}`,
			header: map[string]string{"Idempotency-Key": "doc-1"}},
		{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"doc","default_owner":"owner"}`},
		{method: "GET", path: "/workspaces", user: "admin"},
		{method: "GET", path: "/workspaces?limit=1&status=ready", user: "admin"},
		{method: "GET", path: "/workspaces/ws-a", user: "admin"},
		{method: "GET", path: "/workspaces/ws-doc", user: "admin"},
		{method: "GET", path: "/workspaces/ws-f", user: "admin"},
		{method: "GET", path: "/workspaces/ws-missing", user: "admin"},
		{method: "GET", path: "/workspaces/ws-a", user: "stranger"},
		{method: "GET", path: "/workspaces/ws-a/events", user: "owner"},
		{method: "GET", path: "/workspaces/ws-a/events?limit=1", user: "owner"},
		{method: "POST", path: "/workspaces/ws-a/members", user: "owner", body: `{"username":"bob","role":"ws_admin"}`},
		{method: "DELETE", path: "/workspaces/ws-a/members/bob", user: "owner"},
		{method: "POST", path: "/workspaces/ws-a/shares", user: "owner", body: `{"path":"a.txt","max_uses":1}`},
		{method: "POST", path: "/workspaces/ws-a/shares", user: "owner", body: `{"path":"b.txt"}`},
		{method: "GET", path: "/workspaces/ws-a/shares", user: "owner"},
		{method: "DELETE", path: "/workspaces/ws-a/shares/0123456789abcdef", user: "owner"},
		{method: "GET", path: "/shares/ws-a.0123456789abcdef.nope"},
		{method: "PATCH", path: "/workspaces/ws-a", user: "admin", body: `{"quota_mb":null}`},
		{method: "POST", path: "/workspaces/ws-f/retry", user: "admin"},
		{method: "POST", path: "/workspaces/ws-a/retry", user: "admin", body: `{}`},
		{method: "DELETE", path: "/workspaces/ws-a?purge=true", user: "admin"},
		{method: "DELETE", path: "/workspaces/ws-f?force=true", user: "admin"},
		{method: "DELETE", path: "/names/ws-nothing-held", user: "admin"},
		{method: "GET", path: "/deadletters", user: "admin"},
		{method: "GET", path: "/deadletters/1", user: "admin"},
		{method: "POST", path: "/deadletters/1/replay", user: "admin"},
		{method: "DELETE", path: "/deadletters/1", user: "admin"},
		{method: "GET", path: "/healthz"},
		{method: "GET", path: "/readyz"},
		{method: "GET", path: "/metrics"},
		{method: "GET", path: "/openapi.yaml"},
	}
	invalid := []req{
		{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"x","default_owner":"o","extra":1}`},
		{method: "POST", path: "/workspaces", user: "admin", body: `{`},
		{method: "POST", path: "/workspaces", user: "admin", body: `{}`, contentType: "text/plain"},
		{method: "POST", path: "/workspaces", body: `{"preferred_name":"x","default_owner":"o"}`},
		{method: "GET", path: "/workspaces?limit=9999", user: "admin"},
		{method: "POST", path: "/workspaces/ws-a/members", user: "admin", body: `{"username":"bob","role":"boss"}`},
		{method: "POST", path: "/workspaces/ws-a/shares", user: "owner", body: `{"path":"a.txt","max_uses":0}`},
	}
	for _, rq := range valid {
		checkAgainstDoc(t, s, router, rq, true)
	}
	for _, rq := range invalid {
		checkAgainstDoc(t, s, router, rq, false)
	}
}

func checkAgainstDoc(t *testing.T, s *stack, router routers.Router, rq req, validRequest bool) {
	t.Helper()
	name := rq.method + " " + rq.path + " as " + rq.user
	hr := httptest.NewRequest(rq.method, rq.path, strings.NewReader(rq.body))
	if rq.body != "" {
		hr.Header.Set("Content-Type", "application/json")
		if rq.contentType != "" {
			hr.Header.Set("Content-Type", rq.contentType)
		}
	}
	if rq.user != "" {
		hr.Header.Set("Authorization", "Bearer "+rq.user)
	}
	for k, v := range rq.header {
		hr.Header.Set(k, v)
	}
	route, params, err := router.FindRoute(hr)
	if err != nil {
		t.Fatalf("%s: no route in the document: %v", name, err)
	}
	in := &openapi3filter.RequestValidationInput{Request: hr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	ctx := context.Background()
	if validRequest {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Errorf("%s: request does not match the document: %v", name, err)
		}
		hr.Body = io.NopCloser(strings.NewReader(rq.body)) // validation read it
	}
	rec := httptest.NewRecorder()
	s.h.ServeHTTP(rec, hr)
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: rec.Code, Header: rec.Header(),
		Body: io.NopCloser(bytes.NewReader(rec.Body.Bytes())), Options: &openapi3filter.Options{IncludeResponseStatus: true}}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		t.Errorf("%s: answer %d does not match the document: %v\n%s", name, rec.Code, err, rec.Body.Bytes())
	}
}
