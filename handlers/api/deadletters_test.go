package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/sagatest"
	"github.com/eo-workspaces/provisioner/sagas/secrets"
)

// startWorker runs a worker over in-memory providers on the stack's bus.
func (s *stack) startWorker(users ...string) {
	s.t.Helper()
	kv := s.kv(events.SecretsBucket)
	vault, err := secrets.New(kv, secrets.Config{Key: secrets.KeyFromPassphrase("test")})
	if err != nil {
		s.t.Fatal(err)
	}
	prov := sagatest.New(users...)
	w, err := worker.New(worker.Config{Concurrency: 2, WorkerID: "w-dlq", Endpoint: "http://127.0.0.1:9000",
		AckWait: 2 * time.Second, NakDelay: 100 * time.Millisecond, MaxRetryElapsed: time.Second,
		RetryInitial: 5 * time.Millisecond, RetryMax: 50 * time.Millisecond, StepTimeout: 5 * time.Second},
		worker.Deps{JS: s.js, Publisher: s.pub, Schema: s.schema, Identity: prov, Store: prov, Secrets: vault, Log: zap.NewNop()})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	s.t.Cleanup(func() { cancel(); <-done })
	select {
	case <-w.Ready():
	case err := <-done:
		s.t.Fatalf("worker: %v", err)
	}
}

// A command that breaks its schema, published straight to NATS, lands in
// the dead letters; an operator lists it, sees why, replays it fixed, and
// the workspace ends ready; the dead letter is gone.
func TestSchemaViolatingCommandIsFixedAndReplayedToReady(t *testing.T) {
	s := newStack(t)
	s.startWorker("alice")
	bad := `{"specversion":"1.0","id":"cmd-bad-1","source":"portal","type":"workspace.create","subject":"ws-fixme",` +
		`"time":"2026-01-01T00:00:00Z","datacontenttype":"application/json","actor":"portal","correlationid":"c-1","causationid":"c-1",` +
		`"data":{"preferred_name":"fixme","default_owner":"alice","colour":"blue"}}`
	if _, err := s.js.PublishMsg(s.ctx, &nats.Msg{Subject: events.CommandSubjectPrefix + "ws-fixme.create", Data: []byte(bad)}); err != nil {
		t.Fatal(err)
	}
	var list deadLetterList
	eventually(t, "the dead letter listed", func() bool {
		r := s.call(req{method: "GET", path: "/deadletters", user: "admin"})
		list = deadLetterList{}
		r.json(t, &list)
		return len(list.Items) == 1
	})
	dl := list.Items[0]
	if dl.Kind != "rejected" || dl.Workspace != "ws-fixme" || dl.ID != "cmd-bad-1" || !strings.Contains(dl.Reason, "colour") {
		t.Fatalf("dead letter %+v, want the rejected create with its reason", dl)
	}
	path := fmt.Sprintf("/deadletters/%d", dl.Seq)
	var shown deadLetterBody
	s.call(req{method: "GET", path: path, user: "admin"}).json(t, &shown)
	if !json.Valid(shown.Command) || !strings.Contains(string(shown.Command), `"colour"`) {
		t.Fatalf("shown command %s", shown.Command)
	}

	// Replayed as is, it breaks its schema again: refused, kept.
	if r := s.call(req{method: "POST", path: path + "/replay", user: "admin"}); r.status != http.StatusUnprocessableEntity ||
		!strings.HasPrefix(r.errBody(t).Field, "command") {
		t.Fatalf("replay as is: %d %s", r.status, r.body)
	}
	fixed := strings.Replace(bad, `,"colour":"blue"`, "", 1)
	r := s.call(req{method: "POST", path: path + "/replay", user: "admin", body: `{"command":` + fixed + `}`})
	if r.status != http.StatusAccepted {
		t.Fatalf("replay fixed: %d %s", r.status, r.body)
	}
	s.waitFor("ws-fixme", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusReady })
	if r := s.call(req{method: "GET", path: path, user: "admin"}); r.status != http.StatusNotFound {
		t.Fatalf("the replayed dead letter is still there: %d", r.status)
	}
}

// Discarding removes a dead letter; only platform admins handle them, and
// a bad sequence is the caller's error.
func TestDeadLettersDiscardAndAccess(t *testing.T) {
	s := newStack(t)
	m := nats.NewMsg(events.DeadLetterSubjectPrefix + "rejected")
	m.Data = []byte("not json at all")
	m.Header.Set(events.HeaderDeadLetterReason, "invalid command")
	ack, err := s.js.PublishMsg(s.ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	path := fmt.Sprintf("/deadletters/%d", ack.Sequence)
	for _, rq := range []req{{method: "GET", path: "/deadletters", user: "alice"}, {method: "GET", path: path, user: "alice"},
		{method: "DELETE", path: path, user: "alice"}, {method: "POST", path: path + "/replay", user: "alice"}} {
		if r := s.call(rq); r.status != http.StatusForbidden {
			t.Fatalf("%s %s by a non-admin: %d", rq.method, rq.path, r.status)
		}
	}
	var shown deadLetterBody
	if s.call(req{method: "GET", path: path, user: "admin"}).json(t, &shown); shown.Body != "not json at all" || shown.Reason != "invalid command" {
		t.Fatalf("shown %+v", shown)
	}
	if r := s.call(req{method: "POST", path: path + "/replay", user: "admin"}); r.status != http.StatusUnprocessableEntity {
		t.Fatalf("replay of a non-JSON body: %d %s", r.status, r.body)
	}
	if r := s.call(req{method: "DELETE", path: path, user: "admin"}); r.status != http.StatusNoContent {
		t.Fatalf("discard: %d %s", r.status, r.body)
	}
	if r := s.call(req{method: "DELETE", path: path, user: "admin"}); r.status != http.StatusNotFound {
		t.Fatalf("discard again: %d %s", r.status, r.body)
	}
	for _, p := range []string{"/deadletters/0", "/deadletters/x", "/deadletters?cursor=-1", "/deadletters?limit=0"} {
		if r := s.call(req{method: "GET", path: p, user: "admin"}); r.status != http.StatusUnprocessableEntity {
			t.Fatalf("GET %s: %d %s", p, r.status, r.body)
		}
	}
}
