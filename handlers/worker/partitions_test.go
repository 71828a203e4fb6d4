package worker_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
)

// memberRounds is what each member goes through: every step changes the
// membership, so every command leaves an event, and applying two of them
// in the other order ends differently.
var memberRounds = []string{events.RoleViewer, events.RoleAccess, "", events.RoleAdmin, events.RoleViewer, "",
	events.RoleAccess, events.RoleAdmin}

var orderUsers = []string{"user-a", "user-b"}

// orderRun publishes membership commands and checks how they were applied.
type orderRun struct {
	h    *harness
	mu   sync.Mutex
	sent map[string][]string // workspace: create and member command ids in publish order
	n    int                 // commands published, creates included
}

func newOrderRun(h *harness) *orderRun {
	for _, u := range orderUsers {
		h.prov.AddUser(u)
	}
	// Membership steps take a few milliseconds, so a workspace's commands
	// overlap in flight when workers race.
	h.prov.SetBefore(func(op, _ string) error {
		if op == "GrantClientRole" || op == "RevokeClientRole" {
			time.Sleep(time.Duration(rand.IntN(10)) * time.Millisecond)
		}
		return nil
	})
	return &orderRun{h: h, sent: map[string][]string{}}
}

// create publishes ws's create, whose owner's membership is the first
// membership event.
func (r *orderRun) create(ws string) {
	env := create(r.h.t, ws)
	r.h.send(env)
	r.mu.Lock()
	r.sent[ws] = append(r.sent[ws], env.ID)
	r.n++
	r.mu.Unlock()
}

// round publishes round i of every user of ws.
func (r *orderRun) round(ws string, i int) {
	for _, u := range orderUsers {
		var p events.Payload = &events.MemberAdd{Username: u, Role: memberRounds[i]}
		if memberRounds[i] == "" {
			p = &events.MemberRemove{Username: u}
		}
		env := command(r.h.t, ws, p)
		r.h.send(env)
		r.mu.Lock()
		r.sent[ws] = append(r.sent[ws], env.ID)
		r.n++
		r.mu.Unlock()
	}
}

// applied lists, per workspace, the causing command ids of the membership
// events in the order the events were stored.
func (r *orderRun) applied() map[string][]string {
	r.h.t.Helper()
	ctx := context.Background()
	c, err := r.h.js.OrderedConsumer(ctx, events.EventsStream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		r.h.t.Fatal(err)
	}
	out := map[string][]string{}
	for {
		batch, err := c.FetchNoWait(500)
		if err != nil {
			r.h.t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var env events.Envelope
			if json.Unmarshal(m.Data(), &env) != nil {
				continue
			}
			if env.Type == events.TypeMemberAdded || env.Type == events.TypeMemberRemoved {
				out[env.Subject] = append(out[env.Subject], env.CausationID)
			}
		}
		if n == 0 {
			return out
		}
	}
}

// check waits until every membership command left its event, then
// asserts they applied in publish order, each once, and the members end
// as the last round says.
func (r *orderRun) check(regs []*prometheus.Registry) {
	h := r.h
	h.t.Helper()
	var got map[string][]string
	h.waitForWithin(60*time.Second, "every membership command applied", func() bool {
		got = r.applied()
		for ws, ids := range r.sent {
			if len(got[ws]) < len(ids) {
				return false
			}
		}
		return true
	})
	for ws, ids := range r.sent {
		if !slices.Equal(got[ws], ids) {
			h.t.Errorf("%s: applied in the order %v of publishing", ws, publishIndexes(got[ws], ids))
		}
		for _, u := range orderUsers {
			if m := h.prov.Workspace(ws).Mappings[u]; !slices.Equal(m, []string{events.RoleAdmin}) {
				h.t.Errorf("%s: %s holds %v, want the last round's %s", ws, u, m, events.RoleAdmin)
			}
		}
	}
	h.waitFor("every command acknowledged", h.settled)
	done := 0.0
	for _, reg := range regs {
		done += doneCommands(h.t, reg)
	}
	if int(done) != r.n {
		h.t.Errorf("%v commands handled to the end, %d published: one ran twice or not at all", done, r.n)
	}
}

// doneCommands sums the commands a worker handled to the end.
func doneCommands(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "workspace_worker_commands_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, "outcome", "done") {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

// startWorker starts worker id with a registry of its own.
func (h *harness) startWorker(id string) (stop func() error, reg *prometheus.Registry) {
	reg = prometheus.NewRegistry()
	h.metrics = reg
	return h.start(testConfig(id)), reg
}

// owners reads who owns each partition from the workers bucket.
func (h *harness) owners() map[int]string {
	h.t.Helper()
	ctx := context.Background()
	kv, err := h.js.KeyValue(ctx, events.WorkersBucket)
	if err != nil {
		h.t.Fatal(err)
	}
	out := map[int]string{}
	for i := range events.DefaultPartitions {
		e, err := kv.Get(ctx, fmt.Sprintf("partition.%d", i))
		if err != nil {
			continue
		}
		var l struct{ Worker string }
		if json.Unmarshal(e.Value(), &l) == nil {
			out[i] = l.Worker
		}
	}
	return out
}

// balanced reports whether every partition is owned and each of ids owns
// its share.
func (h *harness) balanced(ids ...string) bool {
	o := h.owners()
	if len(o) != events.DefaultPartitions {
		return false
	}
	count := map[string]int{}
	for _, w := range o {
		count[w]++
	}
	for _, id := range ids {
		if count[id] < events.DefaultPartitions/len(ids) {
			return false
		}
	}
	return len(count) == len(ids)
}

// Three workers share the commands; workspaces whose partitions belong to
// different workers each get their membership commands, interleaved with
// the others', applied in publish order and once.
func TestWorkspaceOrderHoldsAcrossWorkers(t *testing.T) {
	h := newHarness(t)
	ids := []string{"w1", "w2", "w3"}
	var regs []*prometheus.Registry
	for _, id := range ids {
		_, reg := h.startWorker(id)
		regs = append(regs, reg)
	}
	h.waitFor("the partitions spread over three workers", func() bool { return h.balanced(ids...) })
	owners := h.owners()
	perWorker := map[string]int{}
	var names []string
	for i := 0; len(names) < 2*len(ids); i++ {
		ws := fmt.Sprintf("ws-order%d", i)
		if w := owners[events.PartitionOf(ws, events.DefaultPartitions)]; perWorker[w] < 2 {
			perWorker[w]++
			names = append(names, ws)
		}
	}
	r := newOrderRun(h)
	for _, ws := range names {
		r.create(ws)
	}
	for i := range memberRounds {
		for _, ws := range names {
			r.round(ws, i)
		}
	}
	r.check(regs)
	for i, reg := range regs {
		if doneCommands(t, reg) == 0 {
			t.Errorf("worker %s handled nothing", ids[i])
		}
	}
}

// On a three-node cluster with replicated streams and buckets, two
// workers share the partitions and keep each workspace's order.
func TestWorkspaceOrderHoldsAcrossWorkersOnACluster(t *testing.T) {
	h := newHarnessOn(t, bustest.StartCluster(t))
	ids := []string{"w1", "w2"}
	var regs []*prometheus.Registry
	for _, id := range ids {
		_, reg := h.startWorker(id)
		regs = append(regs, reg)
	}
	h.waitForWithin(60*time.Second, "the partitions spread over two workers", func() bool { return h.balanced(ids...) })
	r := newOrderRun(h)
	names := []string{"ws-c1", "ws-c2", "ws-c3", "ws-c4"}
	for _, ws := range names {
		r.create(ws)
	}
	for i := range memberRounds {
		for _, ws := range names {
			r.round(ws, i)
		}
	}
	r.check(regs)
}

// Workers join and one leaves while commands keep coming: the partitions
// move between them mid-stream, and every command still applies once, in
// order.
func TestWorkersJoiningAndLeavingApplyEveryCommandOnceInOrder(t *testing.T) {
	h := newHarness(t)
	stop1, reg1 := h.startWorker("w1")
	regs := []*prometheus.Registry{reg1}
	h.waitFor("w1 owns every partition", func() bool { return h.balanced("w1") })
	r := newOrderRun(h)
	var names []string
	for i := range 8 {
		names = append(names, fmt.Sprintf("ws-move%d", i))
		r.create(names[i])
	}
	published := make(chan int, len(memberRounds))
	go func() {
		defer close(published)
		for i := range memberRounds {
			for _, ws := range names {
				r.round(ws, i)
				time.Sleep(40 * time.Millisecond)
			}
			published <- i
		}
	}()
	<-published
	_, reg2 := h.startWorker("w2")
	<-published
	_, reg3 := h.startWorker("w3")
	regs = append(regs, reg2, reg3)
	h.waitFor("the partitions spread over three workers", func() bool { return h.balanced("w1", "w2", "w3") })
	<-published // a round more under three workers (closed: all published)
	if err := stop1(); err != nil {
		t.Fatal(err)
	}
	h.waitFor("w1's partitions taken over", func() bool { return h.balanced("w2", "w3") })
	for range published {
	}
	r.check(regs)
	for i, reg := range regs {
		if doneCommands(t, reg) == 0 {
			t.Errorf("worker w%d handled nothing", i+1)
		}
	}
}

// A deployment of the earlier version has commands waiting in the one
// shared consumer: the new worker drains them first, then deletes it and
// takes the later commands from the partitions, in order.
func TestEarlierSharedConsumerIsDrainedFirst(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	// The earlier version's consumer and stream state: the partitions
	// stream was made by a later process, so remake it after the
	// earlier commands, as an upgrade finds it.
	if err := h.js.DeleteStream(ctx, events.PartitionsStream); err != nil {
		t.Fatal(err)
	}
	if _, err := h.js.CreateOrUpdateConsumer(ctx, events.CommandsStream, jetstream.ConsumerConfig{
		Durable: worker.ConsumerName, AckPolicy: jetstream.AckExplicitPolicy, FilterSubject: events.CommandSubjectPrefix + ">",
	}); err != nil {
		t.Fatal(err)
	}
	r := newOrderRun(h)
	names := []string{"ws-old1", "ws-old2", "ws-old3"}
	for _, ws := range names {
		r.create(ws)
	}
	for i := range 4 {
		for _, ws := range names {
			r.round(ws, i)
		}
	}
	if err := events.EnsureTopology(ctx, h.js, events.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	for i := 4; i < len(memberRounds); i++ {
		for _, ws := range names {
			r.round(ws, i)
		}
	}
	_, reg := h.startWorker("w1")
	r.check([]*prometheus.Registry{reg})
	if _, err := h.js.Consumer(ctx, events.CommandsStream, worker.ConsumerName); err == nil {
		t.Error("the earlier consumer is still there")
	}
}

// publishIndexes maps applied ids to their place in publish order (-1:
// never published).
func publishIndexes(applied, published []string) []int {
	out := make([]int, len(applied))
	for i, id := range applied {
		out[i] = slices.Index(published, id)
	}
	return out
}
