package main

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/api"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/schemas"
)

func TestWsctlReconcile(t *testing.T) {
	b := bustest.Start(t)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	schema, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	proj, _ := b.JS.KeyValue(ctx, events.ProjectionBucket)
	raw, _ := json.Marshal(readmodel.Workspace{Name: "ws-drift", Status: events.StatusDegraded, CreatedAt: time.Now()})
	if _, err := proj.Put(ctx, "ws-drift", raw); err != nil {
		t.Fatal(err)
	}
	reader := readmodel.NewReader(zap.NewNop())
	go func() { _ = reader.Run(ctx, b.JS) }()
	<-reader.Ready()
	namesKV, _ := b.JS.KeyValue(ctx, events.NamesBucket)
	idem, _ := b.JS.KeyValue(ctx, events.IdempotencyBucket)
	h, err := api.New(api.Config{}, api.Deps{Publisher: events.NewPublisher(b.JS, schema), Workspaces: reader,
		Names: names.NewKV(namesKV), Idempotency: idem, JS: b.JS, Log: zap.NewNop(),
		Auth: auth.Static(auth.Principal{Username: "ops", RealmRoles: []string{auth.DefaultAdminRole}})})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)

	wsctlRun(t, srv.URL, exitUsage, "reconcile")
	wsctlRun(t, srv.URL, exitUsage, "reconcile", "a", "b")
	wsctlRun(t, srv.URL, exitFailed, "reconcile", "ws-nowhere")
	if out := wsctlRun(t, srv.URL, exitOK, "reconcile", "ws-drift"); !strings.Contains(out, "ws-drift") {
		t.Fatalf("reconcile: %s", out)
	}
	stream, err := b.JS.Stream(ctx, events.CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.GetLastMsgForSubject(ctx, events.CommandSubjectPrefix+"ws-drift.reconcile")
	if err != nil {
		t.Fatalf("no reconcile command queued: %v", err)
	}
	var env events.Envelope
	if err := json.Unmarshal(m.Data, &env); err != nil || env.Type != events.TypeReconcile || env.Actor != "ops" {
		t.Fatalf("queued %s (%v)", m.Data, err)
	}
}
