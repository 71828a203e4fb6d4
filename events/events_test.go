package events_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
)

func TestNameFor(t *testing.T) {
	cases := []struct{ in, want string }{
		{"team-a", "ws-team-a"},
		{"Team A", "ws-team-a"},
		{"  EO__Lab!!2024 ", "ws-eo-lab-2024"},
		{"ws-x", "ws-ws-x"},
		{"--a--b--", "ws-a-b"},
	}
	for _, c := range cases {
		got, err := events.NameFor(c.in)
		if err != nil || got != c.want {
			t.Errorf("NameFor(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
		if err := events.ValidateName(got); err != nil {
			t.Errorf("derived name %q is not valid: %v", got, err)
		}
	}
}

func TestNameForRejects(t *testing.T) {
	for _, in := range []string{"", "!!!", "ü", strings.Repeat("a", 61), "x-s3alias"} {
		_, err := events.NameFor(in)
		var ne *events.NameError
		if !errors.As(err, &ne) || ne.Reason == "" {
			t.Errorf("NameFor(%q) = %v; want a NameError with a reason", in, err)
		}
	}
}

func TestValidateName(t *testing.T) {
	for _, ok := range []string{"ws-a", "ws-a1-b2", "ws-" + strings.Repeat("a", 60)} {
		if err := events.ValidateName(ok); err != nil {
			t.Errorf("%q rejected: %v", ok, err)
		}
	}
	for _, bad := range []string{"a", "ws-", "ws-A", "ws-a.b", "ws-a--b", "ws-a-", "ws-a_b", "ws-a>b", "ws-" + strings.Repeat("a", 61)} {
		if err := events.ValidateName(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestSubjects(t *testing.T) {
	cases := map[string]string{
		events.TypeCreate:        "workspace.cmd.ws-a.create",
		events.TypeMemberRemove:  "workspace.cmd.ws-a.member.remove",
		events.TypeStatusChanged: "workspace.evt.ws-a.status",
		events.TypeStepFailed:    "workspace.evt.ws-a.step.failed",
	}
	for typ, want := range cases {
		spec, ok := events.Lookup(typ)
		if !ok {
			t.Fatalf("%s not registered", typ)
		}
		got, err := spec.Subject("ws-a")
		if err != nil || got != want {
			t.Errorf("%s subject = %q, %v; want %q", typ, got, err, want)
		}
		if ws := events.WorkspaceFromSubject(got); ws != "ws-a" {
			t.Errorf("WorkspaceFromSubject(%q) = %q", got, ws)
		}
	}
	spec, _ := events.Lookup(events.TypeCreate)
	if _, err := spec.Subject("ws-a.>"); err == nil {
		t.Error("a subject with wildcards was built")
	}
}

func TestEnvelopeDefaults(t *testing.T) {
	env, err := events.New("ws-a", &events.Delete{Purge: true}, events.Meta{Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if env.ID == "" || env.CorrelationID != env.ID || env.SpecVersion != "1.0" || env.Type != events.TypeDelete ||
		env.Time.IsZero() || env.Source == "" || env.DataContentType != "application/json" {
		t.Fatalf("defaults not filled: %+v", env)
	}
	next, _ := events.New("ws-a", &events.StatusChanged{Status: events.StatusDeleting}, events.Caused(env))
	if next.CorrelationID != env.ID || next.CausationID != env.ID || next.Actor != "alice" {
		t.Fatalf("causal chain lost: %+v", next)
	}
	env.Data = []byte(`{"purge":true,"extra":1}`)
	if _, err := env.DecodeData(); err == nil {
		t.Fatal("unknown field accepted by DecodeData")
	}
}

func TestIsConflict(t *testing.T) {
	wrongLast := &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequence}
	wrongLastR3 := &jetstream.APIError{Code: 400, ErrorCode: jetstream.JSErrCodeStreamWrongLastSequenceConstant}
	cases := []struct {
		err  error
		want bool
	}{
		{jetstream.ErrKeyExists, true},
		{fmt.Errorf("save: %w", jetstream.ErrKeyRevisionMismatch), true},
		{fmt.Errorf("%w: %w", wrongLast, jetstream.ErrKeyRevisionMismatch), true},
		{fmt.Errorf("%w: %w", wrongLastR3, jetstream.ErrKeyRevisionMismatch), true}, // Update, replicated
		{fmt.Errorf("%w: %w", wrongLastR3, jetstream.ErrKeyExists), true},           // Create, replicated
		{wrongLastR3, true},
		{jetstream.ErrKeyNotFound, false},
		{&jetstream.APIError{Code: 503, ErrorCode: jetstream.JSErrCodeJetStreamNotEnabled}, false},
		{nil, false},
	}
	for _, c := range cases {
		if got := events.IsConflict(c.err); got != c.want {
			t.Errorf("IsConflict(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
