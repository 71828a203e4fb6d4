package api

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
)

// A deleted workspace's held name is refused with the reason and until
// when; a platform admin releases it, and the next create takes it.
func TestHeldNameIsRefusedThenTakenAfterRelease(t *testing.T) {
	s := newStack(t)
	create := req{method: "POST", path: "/workspaces", user: "admin", body: `{"preferred_name":"held","default_owner":"u"}`}
	if r := s.call(create); r.status != http.StatusAccepted {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	s.emit("ws-held", &events.StatusChanged{Status: events.StatusDeleted})
	s.waitFor("ws-held", func(ws readmodel.Workspace, _ bool) bool { return ws.Status == events.StatusDeleted })
	until := time.Now().Add(30 * 24 * time.Hour)
	if err := names.NewKV(s.names).Hold(context.Background(), "ws-held", until); err != nil { // the delete's last step
		t.Fatal(err)
	}

	r := s.call(create)
	if r.status != http.StatusConflict {
		t.Fatalf("create of a held name: %d %s", r.status, r.body)
	}
	e := r.errBody(t)
	if e.Field != "preferred_name" || !strings.Contains(e.Error, "held until "+until.UTC().Format(time.RFC3339)) ||
		!strings.Contains(e.Error, "DELETE /names/ws-held") {
		t.Fatalf("refusal %+v, want the reason, until when and the way out", e)
	}

	release := req{method: "DELETE", path: "/names/ws-held", user: "admin"}
	if r := s.call(req{method: "DELETE", path: "/names/ws-held", user: "alice"}); r.status != http.StatusForbidden {
		t.Fatalf("release by a non-admin: %d %s", r.status, r.body)
	}
	if r := s.call(release); r.status != http.StatusNoContent {
		t.Fatalf("release: %d %s", r.status, r.body)
	}
	s.assertReleased("ws-held", "admin", events.NameReleasedEarly, until)
	if r := s.call(release); r.status != http.StatusNotFound || r.errBody(t).Field != "name" {
		t.Fatalf("second release: %d %s", r.status, r.body)
	}
	if r := s.call(create); r.status != http.StatusAccepted {
		t.Fatalf("create after the release: %d %s", r.status, r.body)
	}
	if r := s.call(release); r.status != http.StatusConflict {
		t.Fatalf("release of a live reservation: %d %s", r.status, r.body)
	}
}

// A hold that is over no longer stops a create, which announces the
// name's release before the workers' expiry check comes round.
func TestExpiredHoldIsTakenOver(t *testing.T) {
	s := newStack(t)
	until := time.Now().Add(-time.Second)
	if err := names.NewKV(s.names).Hold(context.Background(), "ws-old-hold", until); err != nil {
		t.Fatal(err)
	}
	body := `{"preferred_name":"old-hold","default_owner":"u"}`
	if r := s.call(req{method: "POST", path: "/workspaces", user: "admin", body: body}); r.status != http.StatusAccepted {
		t.Fatalf("create over an expired hold: %d %s", r.status, r.body)
	}
	s.assertReleased("ws-old-hold", events.DefaultSource, events.NameReleasedExpired, until)
}

// assertReleased checks the audit trail's last name.released of ws.
func (s *stack) assertReleased(ws, actor, reason string, until time.Time) {
	s.t.Helper()
	st, err := s.js.Stream(s.ctx, events.EventsStream)
	if err != nil {
		s.t.Fatal(err)
	}
	m, err := st.GetLastMsgForSubject(s.ctx, events.EventSubjectPrefix+ws+".name.released")
	if err != nil {
		s.t.Fatalf("no name.released for %s: %v", ws, err)
	}
	env, err := events.Parse(m.Data, s.schema)
	if err != nil {
		s.t.Fatal(err)
	}
	p, err := env.DecodeData()
	if err != nil {
		s.t.Fatal(err)
	}
	got, ok := p.(*events.NameReleased)
	if !ok || env.Actor != actor || got.Reason != reason || got.HeldUntil == nil || !got.HeldUntil.Equal(until.UTC()) {
		s.t.Fatalf("name.released %+v by %s, want %s by %s, held until %s", p, env.Actor, reason, actor, until.UTC())
	}
}
