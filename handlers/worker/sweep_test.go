package worker_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
)

// reconcileIDs lists the ids of the reconcile commands of ws in the
// commands stream, one per message.
func (h *harness) reconcileIDs(ws string) []string {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, events.CommandsStream)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			h.t.Fatal(err)
		}
		if m.Subject != events.CommandSubjectPrefix+ws+".reconcile" {
			continue
		}
		var env events.Envelope
		if err := json.Unmarshal(m.Data, &env); err != nil {
			h.t.Fatal(err)
		}
		ids = append(ids, env.ID)
	}
	return ids
}

// reconcileTTL is the Nats-TTL header of ws's last reconcile command.
func (h *harness) reconcileTTL(ws string) string {
	h.t.Helper()
	ctx := context.Background()
	s, err := h.js.Stream(ctx, events.CommandsStream)
	if err != nil {
		h.t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, events.CommandSubjectPrefix+ws+".reconcile")
	if err != nil {
		h.t.Fatal(err)
	}
	return m.Header.Get(jetstream.MsgTTLHeader)
}

// TestTheSweepRepairsDriftOnceAnIntervalWhateverTheWorkers: two workers
// sweep every 300 ms; a bucket and a policy removed by hand come back
// without any command sent, and each interval left one reconcile command
// per workspace in the stream, not one per worker.
func TestTheSweepRepairsDriftOnceAnIntervalWhateverTheWorkers(t *testing.T) {
	h := newHarness(t)
	regs := []*prometheus.Registry{prometheus.NewRegistry(), prometheus.NewRegistry()}
	for i, id := range []string{"w-sweep-1", "w-sweep-2"} {
		h.metrics = regs[i]
		cfg := testConfig(id)
		cfg.ReconcileInterval = 300 * time.Millisecond
		h.start(cfg)
	}

	h.send(create(t, "ws-sweep"))
	h.waitFor("ready", func() bool { return h.status("ws-sweep") == events.StatusReady })
	h.prov.Drop("bucket", "ws-sweep")
	h.prov.Drop("policy", "ws-sweep")
	h.waitFor("the sweep's repair", func() bool {
		st := h.prov.Workspace("ws-sweep")
		return st.Bucket && st.Policy == "ws-sweep"
	})
	h.waitFor("a few more sweeps", func() bool { return len(h.reconcileIDs("ws-sweep")) >= 3 })
	seen := map[string]bool{}
	for _, id := range h.reconcileIDs("ws-sweep") {
		if seen[id] {
			t.Fatalf("two reconcile commands %s for one interval", id)
		}
		seen[id] = true
	}
	if ttl := h.reconcileTTL("ws-sweep"); ttl != worker.DefaultReconcileKeep.String() {
		t.Errorf("a swept reconcile expires after %q, want %s", ttl, worker.DefaultReconcileKeep)
	}
	if got := sumOf(t, regs, "workspace_worker_drift_repaired_total", "bucket"); got != 1 {
		t.Fatalf("drift repaired {kind=bucket} = %v, want 1", got)
	}
	if got := sumOf(t, regs, "workspace_worker_drift_sweeps_total", ""); got < 2 {
		t.Fatalf("sweeps = %v", got)
	}
}

// sumOf adds a series' values over the workers' registries: the counter,
// or the kind label's series of it.
func sumOf(t *testing.T, regs []*prometheus.Registry, name, kind string) float64 {
	t.Helper()
	var sum float64
	for _, reg := range regs {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if kind == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == kind) {
					sum += m.GetCounter().GetValue()
				}
			}
		}
	}
	return sum
}
