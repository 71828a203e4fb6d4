package names_test

import (
	"context"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/schemas"
)

// An expired hold is announced once, as name.released (expired), and its
// tombstone goes; a hold still in force and a live reservation stay.
func TestExpiredHoldsAreAnnouncedAndCleanedUp(t *testing.T) {
	ctx := context.Background()
	b := bustest.Start(t)
	bucket, err := b.JS.KeyValue(ctx, events.NamesBucket)
	if err != nil {
		t.Fatal(err)
	}
	schema, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	kv := names.NewKV(bucket)
	past, future := time.Now().Add(-time.Minute).Truncate(time.Second), time.Now().Add(time.Hour)
	if err := kv.Hold(ctx, "ws-expired", past); err != nil {
		t.Fatal(err)
	}
	if err := kv.Hold(ctx, "ws-still-held", future); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Reserve(ctx, "ws-live", names.Reservation{CommandID: "c1", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	exp, err := names.NewExpiry(kv, events.NewPublisher(b.JS, schema), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a second sweep (another worker's) changes nothing
		if err := exp.Sweep(ctx, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]bool{"ws-expired": false, "ws-still-held": true, "ws-live": true} {
		if _, rev, err := kv.Get(ctx, name); err != nil || (rev != 0) != want {
			t.Errorf("%s: kept %v (err %v), want %v", name, rev != 0, err, want)
		}
	}
	st, err := b.JS.Stream(ctx, events.EventsStream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("%d events, want one name.released", info.State.Msgs)
	}
	m, err := st.GetLastMsgForSubject(ctx, events.EventSubjectPrefix+"ws-expired.name.released")
	if err != nil {
		t.Fatal(err)
	}
	env, err := events.Parse(m.Data, schema)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := env.DecodeData()
	if r, ok := p.(*events.NameReleased); !ok || r.Reason != events.NameReleasedExpired || r.HeldUntil == nil || !r.HeldUntil.Equal(past.UTC()) {
		t.Fatalf("event %+v", p)
	}
}
