package projection_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/projection"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/schemas"
)

// script is each workspace's events: a member added and removed, so a
// lost or reordered event shows in the end state.
func script() []events.Payload {
	return []events.Payload{
		&events.StatusChanged{Status: events.StatusProvisioning, Owner: "alice"},
		&events.MemberAdded{Username: "alice", Role: events.RoleAdmin},
		&events.MemberAdded{Username: "bob", Role: events.RoleAccess},
		&events.MemberRemoved{Username: "bob"},
		&events.MemberAdded{Username: "carol", Role: events.RoleViewer},
		&events.StatusChanged{Status: events.StatusReady},
	}
}

// publishScripts publishes every workspace's script, the workspaces'
// events interleaved, pausing between rounds so projections are folding
// while events arrive, and returns each workspace's last sequence.
func publishScripts(t *testing.T, ctx context.Context, js jetstream.JetStream, names []string, pause time.Duration) map[string]uint64 {
	t.Helper()
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(js, v)
	last := map[string]uint64{}
	for _, p := range script() {
		for _, ws := range names {
			env, _ := events.New(ws, p, events.Meta{Actor: "t"})
			ack, err := pub.Publish(ctx, env)
			if err != nil {
				t.Error(err)
				return nil
			}
			last[ws] = ack.Sequence
		}
		time.Sleep(pause) // paced on purpose: events keep coming during the takeover
	}
	return last
}

// checkModel waits until every workspace is projected at its last event
// and checks it holds what its script implies.
func checkModel(t *testing.T, ctx context.Context, js jetstream.JetStream, last map[string]uint64) {
	t.Helper()
	kv, err := js.KeyValue(ctx, events.ProjectionBucket)
	if err != nil {
		t.Fatal(err)
	}
	get := func(ws string) readmodel.Workspace {
		var w readmodel.Workspace
		if e, err := kv.Get(ctx, ws); err == nil {
			_ = json.Unmarshal(e.Value(), &w)
		}
		return w
	}
	waitUntil(t, "every workspace projected at its last event", func() bool {
		for ws, seq := range last {
			if get(ws).LastSeq != seq {
				return false
			}
		}
		return true
	})
	want := []readmodel.Member{{Username: "alice", Role: events.RoleAdmin, Kind: events.KindUser}, {Username: "carol", Role: events.RoleViewer, Kind: events.KindUser}}
	for ws := range last {
		w := get(ws)
		if w.Status != events.StatusReady || w.Owner != "alice" || !slices.Equal(w.Members, want) {
			t.Errorf("%s projected as %s, owner %q, members %+v; want ready, alice, %+v", ws, w.Status, w.Owner, w.Members, want)
		}
	}
}

type runningProjector struct {
	reg  *prometheus.Registry
	nc   *nats.Conn
	stop func()
	done chan struct{} // closed once Run returned
}

func (r *runningProjector) leading(t *testing.T) bool {
	return gaugeValue(t, r.reg, "workspace_projection_leader") == 1
}

// startProjector runs a projector on a connection of its own, so closing
// that connection is the process's loss; holder, if not empty, names it.
func startProjector(t *testing.T, urls []string, ttl time.Duration, holder ...string) *runningProjector {
	t.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	r := startProjectorOn(t, js, ttl, holder...)
	r.nc = nc
	return r
}

// startProjectorOn runs a projector on js until the test ends.
func startProjectorOn(t *testing.T, js jetstream.JetStream, ttl time.Duration, holder ...string) *runningProjector {
	t.Helper()
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	p, err := projection.NewProjector(ctx, js, v, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	projection.SetLeaseTTL(p, ttl)
	for _, h := range holder {
		p.SetHolder(h)
	}
	r := &runningProjector{reg: prometheus.NewRegistry(), stop: stop, done: make(chan struct{})}
	if err := p.RegisterMetrics(r.reg); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(r.done)
		if err := p.Run(ctx); err != nil {
			t.Errorf("projection: %v", err)
		}
	}()
	t.Cleanup(func() { stop(); <-r.done })
	return r
}

// Three projection processes on a three-node cluster: one folds, the
// others stand by. The one folding is lost outright (its connection
// closed, so it releases nothing) while events keep coming, and a
// standby takes over once the lease expires; then that one stops
// cleanly and the last takes over at once. Every workspace ends as its
// events say, none lost or out of order.
func TestStandbyProjectionsTakeOverWithNothingLost(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	urls := bustest.StartClusterServers(t)
	js := bustest.Connect(t, urls...)
	if err := events.EnsureTopology(ctx, js, events.TopologyConfig{Replicas: 3}); err != nil {
		t.Fatal(err)
	}
	const ttl = 2 * time.Second
	ps := []*runningProjector{startProjector(t, urls, ttl), startProjector(t, urls, ttl), startProjector(t, urls, ttl)}
	leaders := func() (out []*runningProjector) {
		for _, p := range ps {
			if p.leading(t) {
				out = append(out, p)
			}
		}
		return out
	}
	waitUntil(t, "one projection folding", func() bool { return len(leaders()) == 1 })

	var names []string
	for i := range 40 {
		names = append(names, fmt.Sprintf("ws-standby-%02d", i))
	}
	var wg sync.WaitGroup
	var last map[string]uint64
	wg.Go(func() { last = publishScripts(t, ctx, js, names, 500*time.Millisecond) })

	first := leaders()[0]
	waitUntil(t, "some events folded", func() bool { return gaugeValue(t, first.reg, "workspace_projection_last_applied_sequence") > 0 })
	first.nc.Close()
	lost := time.Now()
	waitUntil(t, "a standby folding", func() bool { l := leaders(); return len(l) == 1 && l[0] != first })
	t.Logf("a standby took over %s after the lost one's connection closed (lease %s)", time.Since(lost).Round(time.Millisecond), ttl)

	second := leaders()[0]
	second.stop()
	<-second.done
	stopped := time.Now()
	waitUntil(t, "the last standby folding", func() bool { l := leaders(); return len(l) == 1 && l[0] != first && l[0] != second })
	if took := time.Since(stopped); took >= ttl {
		t.Errorf("after a clean stop the standby took over in %s, want before the lease's %s expiry", took, ttl)
	}
	wg.Wait()
	if last == nil {
		t.FailNow()
	}
	checkModel(t, ctx, js, last)
	if cp, err := projection.Checkpoint(ctx, js); err != nil || cp > slices.Max(slices.Collect(maps.Values(last))) {
		t.Errorf("checkpoint %d (err %v) beyond the last event", cp, err)
	}
}

// A holder that stalled past its lease's expiry may still fold while the
// next one does: two folding the same events at once, both from the
// start, leave the model exactly as one would.
func TestTwoFoldingAtOnceLeaveTheModelRight(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := bustest.Start(t)
	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for i := range 60 {
		names = append(names, fmt.Sprintf("ws-both-%02d", i))
	}
	last := publishScripts(t, ctx, b.JS, names, 0)
	fctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for range 2 {
		p, err := projection.NewProjector(ctx, b.JS, v, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			if err := projection.ConsumeFrom(fctx, p, 0); err != nil {
				t.Error(err)
			}
		})
	}
	checkModel(t, ctx, b.JS, last)
}

// A projection process lost without giving its lease up and started
// again under the same name folds at once, not after the lease expires.
func TestARestartUnderTheSameNameTakesTheLeaseBackAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	b := bustest.Start(t)
	const ttl = time.Hour // a standby would wait that long
	lost := startProjectorOn(t, b.JS, ttl, "projection-a")
	waitUntil(t, "the first folding", func() bool { return lost.leading(t) })
	lost.stop() // as a crash does: the lease is not given up
	<-lost.done
	if err := forgetRelease(ctx, b.JS); err != nil {
		t.Fatal(err)
	}
	again := startProjectorOn(t, b.JS, ttl, "projection-a")
	waitUntil(t, "the restarted one folding", func() bool { return again.leading(t) })
	checkModel(t, ctx, b.JS, publishScripts(t, ctx, b.JS, []string{"ws-restarted"}, 0))
}

// forgetRelease writes the lease back as a holder that died would have
// left it: held by projection-a, an hour to run.
func forgetRelease(ctx context.Context, js jetstream.JetStream) error {
	kv, err := js.KeyValue(ctx, events.WorkersBucket)
	if err != nil {
		return err
	}
	cp, err := projection.Checkpoint(ctx, js)
	if err != nil {
		return err
	}
	v, _ := json.Marshal(map[string]any{"holder": "projection-a", "expires": time.Now().Add(time.Hour), "applied": cp})
	_, err = kv.Put(ctx, projection.LeaseKey, v)
	return err
}
