package bench

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/worker"
)

// workersFlag is `go tool task bench:sagas -- --workers N`.
var workersFlag = flag.Int("workers", 0, "BenchmarkProvisionWorkers: measure 1..N workers sharing the commands (0: skip)")

// BenchmarkProvisionWorkers provisions BENCH_SCALE_N workspaces (default
// 120) through 1, 2 ... --workers N worker instances sharing the commands
// by partition, at the same offered load each time (BENCH_C creates in
// flight per worker of the largest count), and prints throughput,
// create→ready p50/p99, and the CPU the provisioner's process (workers,
// NATS, the Keycloak emulator) and MinIO burnt, so the line at the end can
// say where the bound is. The counts run 1..N, then N..1 on fresh names,
// so MinIO's growing IAM state weighs on every count alike.
func BenchmarkProvisionWorkers(b *testing.B) {
	maxW := *workersFlag
	if maxW < 1 {
		b.Skip("no --workers N given")
	}
	n, c := envInt(b, "BENCH_SCALE_N", 120), envInt(b, "BENCH_C", 8)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	st := startProvisionStack(ctx, b)
	var current atomic.Pointer[timeline]
	current.Store(newTimeline())
	p := watchOutcomes(b, st, &current)
	offered := c * maxW
	results := make([]*scaleResult, maxW+1)
	var order []int
	for k := 1; k <= maxW; k++ {
		order = append(order, k)
	}
	for k := maxW; k >= 1; k-- {
		order = append(order, k)
	}
	warm := true
	b.ResetTimer()
	for round, k := range order {
		stop := startWorkers(ctx, b, st, c, k)
		if warm { // connections, tokens, MinIO's IAM: outside the figures
			side := newSide("ws-bench-sw", func(ws string) (time.Duration, error) { return p.provision(ctx, ws) })
			side.round(0, offered, offered)
			side.check(b)
			warm = false
		}
		if results[k] == nil {
			results[k] = &scaleResult{workers: k, side: newSide(fmt.Sprintf("ws-bench-w%d", k), nil), steps: newTimeline()}
		}
		r := results[k]
		r.side.provision = func(ws string) (time.Duration, error) { return p.provision(ctx, ws) }
		lo := r.side.n
		half := n / 2
		if round >= maxW {
			half = n - n/2
		}
		p.steps = r.steps
		current.Store(r.steps)
		cpu0, mio0 := processCPU(b), minioCPU(b, st)
		busy0, all0 := machineCPU(b)
		r.side.round(lo, lo+half, offered)
		r.cpu += processCPU(b) - cpu0
		r.minio += minioCPU(b, st) - mio0
		busy1, all1 := machineCPU(b)
		r.machineBusy += busy1 - busy0
		r.machineAll += all1 - all0
		r.side.check(b)
		stop()
	}
	b.StopTimer()
	cores := runtime.NumCPU()
	fmt.Printf("workers sharing the commands (%d partitions), %d creates in flight, %d cores:\n", events.DefaultPartitions, offered, cores)
	for _, r := range results[1:] {
		wall := r.side.elapsed.Seconds()
		fmt.Printf("  %d worker(s): %d workspaces in %s: %.2f workspaces/s (%.2fx one), create→ready p50 %.0f ms, p99 %.0f ms; "+
			"CPU busy: provisioner process %.2f cores, MinIO %.2f cores, whole machine %.0f%%; MinIO IAM steps (policy, credentials) %.0f ms of each create\n",
			r.workers, r.side.n, r.side.elapsed.Round(time.Millisecond), r.side.perSec(), r.side.perSec()/results[1].side.perSec(),
			ms(r.side.lat.pct(0.50)), ms(r.side.lat.pct(0.99)), r.cpu.Seconds()/wall, r.minio.Seconds()/wall,
			100*r.machineShare(), r.iamMillis())
		b.ReportMetric(r.side.perSec(), fmt.Sprintf("ws/s-%dw", r.workers))
		b.ReportMetric(ms(r.side.lat.pct(0.50)), fmt.Sprintf("p50-ms-%dw", r.workers))
		b.ReportMetric(ms(r.side.lat.pct(0.99)), fmt.Sprintf("p99-ms-%dw", r.workers))
	}
	fmt.Println(boundLine(results[1:], cores))
}

type scaleResult struct {
	workers                 int
	side                    *side
	steps                   *timeline
	cpu, minio              time.Duration
	machineBusy, machineAll uint64 // /proc/stat ticks over the rounds
}

func (r *scaleResult) machineShare() float64 {
	if r.machineAll == 0 {
		return 0
	}
	return float64(r.machineBusy) / float64(r.machineAll)
}

// iamMillis is the mean time of the create saga's MinIO IAM steps, each
// from the step before it in its lane.
func (r *scaleResult) iamMillis() float64 {
	r.steps.mu.Lock()
	defer r.steps.mu.Unlock()
	if r.steps.n == 0 {
		return 0
	}
	return float64(r.steps.total["policy"]+r.steps.total["credentials"]) / float64(r.steps.n) / 1e6
}

// boundLine says where the bound is, from the largest count: the
// machine's cores when they are busy (by anything: the provisioner, MinIO,
// and whatever else runs there), MinIO's IAM when its steps take most of a
// create while cores are idle, otherwise the offered load.
func boundLine(rs []*scaleResult, cores int) string {
	last := rs[len(rs)-1]
	wall := last.side.elapsed.Seconds()
	ours := (last.cpu + last.minio).Seconds() / wall
	iamShare := last.iamMillis() / ms(last.side.lat.pct(0.50))
	switch {
	case last.machineShare() >= 0.8:
		return fmt.Sprintf("bound: this machine's CPU: %.0f%% of its %d cores busy at %d workers, %.2f of them by the provisioner "+
			"and MinIO (MinIO %.2f), the rest by other processes; MinIO's IAM steps are %.0f%% of a create's p50, so more "+
			"workers on these cores add little (%.2fx one)", 100*last.machineShare(), cores, last.workers, ours,
			last.minio.Seconds()/wall, 100*iamShare, last.side.perSec()/rs[0].side.perSec())
	case iamShare >= 0.5:
		return fmt.Sprintf("bound: MinIO's IAM: its steps are %.0f%% of a create's p50 while the cores are %.0f%% busy; its IAM "+
			"writes serialise, so more workers wait on it", 100*iamShare, 100*last.machineShare())
	default:
		return fmt.Sprintf("bound: neither the cores (%.0f%% busy) nor MinIO's IAM (%.0f%% of a create's p50): the offered load",
			100*last.machineShare(), 100*iamShare)
	}
}

// machineCPU reads the whole machine's busy and total CPU ticks from
// /proc/stat.
func machineCPU(b *testing.B) (busy, all uint64) {
	b.Helper()
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		b.Fatal(err)
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	for i, f := range strings.Fields(line)[1:] {
		v, _ := strconv.ParseUint(f, 10, 64)
		all += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, all
}

// startWorkers runs k workers of concurrency c, each with its own
// adapters, until the returned stop; they share the partitions once
// each owns its part.
func startWorkers(ctx context.Context, b *testing.B, st *provisionStack, c, k int) (stop func()) {
	b.Helper()
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var ids []string
	for i := range k {
		idp, store := st.adapters(b)
		id := fmt.Sprintf("bench-%d-of-%d", i+1, k)
		ids = append(ids, id)
		w, err := worker.New(worker.Config{Concurrency: c, WorkerID: id, Endpoint: st.mio.URL(), Region: st.mio.Region()},
			worker.Deps{JS: st.bus.JS, Publisher: st.pub, Schema: st.schema, Identity: idp, Store: store,
				Secrets: st.vault, Log: zap.NewNop()})
		if err != nil {
			b.Fatal(err)
		}
		wg.Go(func() {
			if err := w.Run(wctx); err != nil {
				b.Error(err)
			}
		})
	}
	stop = func() { cancel(); wg.Wait() }
	awaitSpread(ctx, b, st, ids, stop)
	return stop
}

// awaitSpread waits until every partition is owned and only by ids.
func awaitSpread(ctx context.Context, b *testing.B, st *provisionStack, ids []string, stop func()) {
	b.Helper()
	kv, err := st.bus.JS.KeyValue(ctx, events.WorkersBucket)
	if err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		owners := map[string]int{}
		for i := range events.DefaultPartitions {
			e, err := kv.Get(ctx, "partition."+strconv.Itoa(i))
			if err != nil {
				continue
			}
			var l struct{ Worker string }
			if json.Unmarshal(e.Value(), &l) == nil {
				owners[l.Worker]++
			}
		}
		n, mine := 0, 0
		for w, k := range owners {
			n += k
			for _, id := range ids {
				if w == id {
					mine++
				}
			}
		}
		if n == events.DefaultPartitions && mine == len(ids) && len(owners) == len(ids) {
			return
		}
		if time.Now().After(deadline) {
			stop()
			b.Fatalf("partitions not spread over %v: %v", ids, owners)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// watchOutcomes is a pipeline without a worker of its own: it publishes
// creates and awaits their outcome.
func watchOutcomes(b *testing.B, st *provisionStack, steps *atomic.Pointer[timeline]) *pipeline {
	b.Helper()
	p := &pipeline{pub: st.pub, outcomes: newOutcomes(), steps: steps.Load()}
	for subject, handle := range map[string]nats.MsgHandler{
		"*.status":         p.outcomes.deliver,
		"*.step.completed": func(m *nats.Msg) { steps.Load().stepDone(m) },
	} {
		sub, err := st.bus.Conn.Subscribe(events.EventSubjectPrefix+subject, handle)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = sub.Unsubscribe() })
	}
	if err := st.bus.Conn.Flush(); err != nil {
		b.Fatal(err)
	}
	return p
}

// processCPU is the user and system CPU this process used so far.
func processCPU(b *testing.B) time.Duration {
	b.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// minioCPU is the user and system CPU the MinIO process used so far, from
// /proc (clock ticks of 1/100 s, Linux's USER_HZ).
func minioCPU(b *testing.B, st *provisionStack) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", st.mio.Pid()))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the command name, which is in parentheses.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
