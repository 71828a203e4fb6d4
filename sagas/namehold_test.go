package sagas_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/names"
)

// The delete's last step holds the name; a create sent straight to NATS
// is refused with the reason and until when, and is taken once a platform
// admin has released the name.
func TestDeletedNameIsHeldUntilReleased(t *testing.T) {
	h := newHarness(t)
	ws := "ws-tomb"
	app, err := sagas.NewApplication(sagas.AppConfig{Engine: fastRetries("w1"), Endpoint: endpoint, Region: region,
		NameHold: time.Hour}, sagas.Ports{Progress: h.progress, Events: h.pub, Identity: h.prov, Store: h.prov,
		Vault: h.vault, Names: names.NewKV(h.namesKV), Log: h.log})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, cmd := range []events.Envelope{create(t, ws), command(t, ws, &events.Delete{})} {
		if err := app.Handle(ctx, cmd); err != nil {
			t.Fatal(err)
		}
	}
	kv := names.NewKV(h.namesKV)
	until, err := kv.HeldUntil(ctx, ws)
	if err != nil || time.Until(until) < 59*time.Minute {
		t.Fatalf("held until %s (%v), want about an hour from now", until, err)
	}
	err = app.Handle(ctx, create(t, ws))
	var rejected *sagas.RejectedError
	if !errors.As(err, &rejected) || !strings.Contains(rejected.Reason, "held until "+until.UTC().Format(time.RFC3339)) {
		t.Fatalf("create of a held name: %v, want a rejection saying until when", err)
	}
	if rec := h.record(ws); rec.Status != events.StatusDeleted {
		t.Fatalf("record after the refused create: %s", rec.Status)
	}
	if err := kv.Release(ctx, ws); err != nil { // DELETE /names/{name}
		t.Fatal(err)
	}
	if err := app.Handle(ctx, create(t, ws)); err != nil {
		t.Fatalf("create after the release: %v", err)
	}
	if rec := h.record(ws); rec.Status != events.StatusReady {
		t.Fatalf("after the release the create ended %s, want ready", rec.Status)
	}
}
