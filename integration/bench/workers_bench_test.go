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
	"syscall"
	"testing"
	"time"

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
	p := watchOutcomes(b, st)
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
			results[k] = &scaleResult{workers: k, side: newSide(fmt.Sprintf("ws-bench-w%d", k), nil)}
		}
		r := results[k]
		r.side.provision = func(ws string) (time.Duration, error) { return p.provision(ctx, ws) }
		lo := r.side.n
		half := n / 2
		if round >= maxW {
			half = n - n/2
		}
		cpu0, mio0 := processCPU(b), minioCPU(b, st)
		r.side.round(lo, lo+half, offered)
		r.cpu += processCPU(b) - cpu0
		r.minio += minioCPU(b, st) - mio0
		r.side.check(b)
		stop()
	}
	b.StopTimer()
	cores := runtime.NumCPU()
	fmt.Printf("workers sharing the commands (%d partitions), %d creates in flight, %d cores:\n", events.DefaultPartitions, offered, cores)
	for _, r := range results[1:] {
		wall := r.side.elapsed.Seconds()
		fmt.Printf("  %d worker(s): %d workspaces in %s: %.2f workspaces/s (%.2fx one), create→ready p50 %.0f ms, p99 %.0f ms; "+
			"CPU busy: provisioner process %.2f cores, MinIO %.2f cores\n",
			r.workers, r.side.n, r.side.elapsed.Round(time.Millisecond), r.side.perSec(), r.side.perSec()/results[1].side.perSec(),
			ms(r.side.lat.pct(0.50)), ms(r.side.lat.pct(0.99)), r.cpu.Seconds()/wall, r.minio.Seconds()/wall)
		b.ReportMetric(r.side.perSec(), fmt.Sprintf("ws/s-%dw", r.workers))
		b.ReportMetric(ms(r.side.lat.pct(0.50)), fmt.Sprintf("p50-ms-%dw", r.workers))
		b.ReportMetric(ms(r.side.lat.pct(0.99)), fmt.Sprintf("p99-ms-%dw", r.workers))
	}
	fmt.Println(boundLine(results[1:], cores))
}

type scaleResult struct {
	workers    int
	side       *side
	cpu, minio time.Duration
}

// boundLine says where the bound is: the machine's cores when the
// provisioner and MinIO together keep them busy at the largest count,
// otherwise MinIO's IAM calls (serialised inside MinIO) when MinIO
// dominates, or the offered load itself.
func boundLine(rs []*scaleResult, cores int) string {
	last := rs[len(rs)-1]
	wall := last.side.elapsed.Seconds()
	busy := (last.cpu + last.minio).Seconds() / wall
	share := busy / float64(cores)
	mioShare := last.minio.Seconds() / (last.cpu + last.minio).Seconds()
	switch {
	case share >= 0.8:
		return fmt.Sprintf("bound: this machine's CPU: at %d workers %.0f%% of %d cores are busy (MinIO %.0f%% of that, "+
			"the provisioner's process with NATS and the emulator the rest); more workers on these cores cannot add throughput",
			last.workers, 100*share, cores, 100*mioShare)
	case mioShare >= 0.5:
		return fmt.Sprintf("bound: MinIO: it burns %.0f%% of the CPU used while cores stay %.0f%% idle: its IAM writes serialise "+
			"behind one lock, so more workers wait on it", 100*mioShare, 100*(1-share))
	default:
		return fmt.Sprintf("bound: neither CPU (%.0f%% of %d cores busy) nor MinIO (%.0f%% of the CPU used): the offered "+
			"load or the providers' latency", 100*share, cores, 100*mioShare)
	}
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
func watchOutcomes(b *testing.B, st *provisionStack) *pipeline {
	b.Helper()
	p := &pipeline{pub: st.pub, outcomes: newOutcomes(), steps: newTimeline()}
	sub, err := st.bus.Conn.Subscribe(events.EventSubjectPrefix+"*.status", p.outcomes.deliver)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = sub.Unsubscribe() })
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
