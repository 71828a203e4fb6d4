package sagas_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas"
)

// acceptAll stands in for the schemas, whose list of saga names knows
// only the kinds that exist; a real new kind adds its name there.
type acceptAll struct{}

func (acceptAll) Validate([]byte) error { return nil }

// A new kind of side saga is its steps alone: the engine runs it in the
// record's side slot of a ready workspace as it runs a membership change
// (no status event, progress in Record.Member, the command marked as
// applied), and records its failure as step.failed with its name.
func TestANewSideSagaKindIsItsStepsAlone(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.ready(h.coordinator(fastRetries("w1")), "ws-side")
	engine, err := sagas.NewEngine(fastRetries("w1"), h.progress, events.NewPublisher(h.js, acceptAll{}), h.log)
	if err != nil {
		t.Fatal(err)
	}
	var ran []string
	step := func(name string, err error) sagas.Step {
		return sagas.Step{Name: name, Do: func(_ context.Context, st *sagas.State) error {
			ran = append(ran, name+":"+st.Params.Username)
			return err
		}}
	}
	rotate := sagas.Saga{Name: "credentials_rotate", Side: true,
		Steps: []sagas.Step{step("new_secret", nil), step("swap_secret", nil)}}
	run := func(s sagas.Saga) (events.Envelope, error) {
		cmd := command(t, "ws-side", &events.Retry{}) // stands in for the kind's own command
		rec, rev, err := h.progress.Load(ctx, "ws-side")
		if err != nil {
			t.Fatal(err)
		}
		side := sagas.NewRun(s, cmd, sagas.Params{Username: user2})
		rec.Member = &side
		return cmd, engine.Run(ctx, s, "ws-side", rec, rev)
	}
	settled := func(cmd events.Envelope) {
		t.Helper()
		rec := h.record("ws-side")
		if rec.Member != nil || rec.Lease != nil || rec.Status != events.StatusReady || rec.Saga != sagas.SagaCreate ||
			!slices.Contains(rec.MembersApplied, cmd.ID) {
			t.Fatalf("record after the side saga: %+v", rec)
		}
	}

	n := len(h.eventsOf("ws-side"))
	cmd, err := run(rotate)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"credentials_rotate:new_secret", "credentials_rotate:swap_secret"}
	if got := summary(t, h.tail("ws-side", n)); !slices.Equal(got, want) || !slices.Equal(ran, []string{"new_secret:" + user2, "swap_secret:" + user2}) {
		t.Fatalf("events %v, steps %v", got, ran)
	}
	settled(cmd)

	n = len(h.eventsOf("ws-side"))
	broken := rotate
	broken.Steps = []sagas.Step{step("new_secret", sagas.Permanentf("no secret for you"))}
	cmd, err = run(broken)
	var failed *sagas.FailedError
	if !errors.As(err, &failed) || failed.Saga != "credentials_rotate" || failed.Step != "new_secret" {
		t.Fatalf("failing side saga: %v", err)
	}
	if got := summary(t, h.tail("ws-side", n)); !slices.Equal(got, []string{"failed:new_secret"}) {
		t.Fatalf("events of the failure %v", got)
	}
	settled(cmd)
}
