package bench

import (
	"context"
	"flag"
	"fmt"
	"io/fs"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// scaleCount and scaleBlock: `go tool task bench:scale -- -scale.n=2000`
// runs a shorter one where 10,000 would take too long.
var (
	scaleCount = flag.Int("scale.n", 10000, "workspaces BenchmarkScale provisions")
	scaleBlock = flag.Int("scale.block", 1000, "workspaces per line of BenchmarkScale's figures")
)

// BenchmarkScale provisions -scale.n workspaces through the worker (real
// JetStream, real MinIO, the Keycloak emulator), BENCH_C at a time, and
// prints throughput and create→ready p50/p99 for each block of
// -scale.block, in order: a cost that grows with the number of workspaces
// already there shows as a slope down the lines.
func BenchmarkScale(b *testing.B) {
	n, block, c := *scaleCount, *scaleBlock, envInt(b, "BENCH_C", 8)
	if n < 1 || block < 1 {
		b.Fatalf("-scale.n %d, -scale.block %d: want positive counts", n, block)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	st := startProvisionStack(ctx, b)
	pipe := startPipeline(ctx, b, st, c)
	warm := newSide("ws-scale-warm", func(ws string) (time.Duration, error) { return pipe.provision(ctx, ws) })
	warm.round(0, c, c)
	warm.check(b)

	b.ResetTimer()
	fmt.Printf("provisioning %d workspaces at concurrency %d, figures per %d (GOMAXPROCS %d)\n", n, c, block, runtime.GOMAXPROCS(0))
	fmt.Printf("%-13s %10s %9s %9s %10s %12s\n", "workspaces", "ws/s", "p50 ms", "p99 ms", "elapsed", "MinIO disk")
	all := newSide("ws-scale", func(ws string) (time.Duration, error) { return pipe.provision(ctx, ws) })
	for lo := 0; lo < n; lo += block {
		hi := min(n, lo+block)
		s := newSide("ws-scale", all.provision)
		s.round(lo, hi, c)
		s.check(b)
		all.n += s.n
		all.elapsed += s.elapsed
		for _, d := range s.lat.all {
			all.lat.add(d)
		}
		fmt.Printf("%6d-%-6d %10.2f %9.0f %9.0f %10s %12s\n", lo+1, hi, s.perSec(), ms(s.lat.pct(0.50)),
			ms(s.lat.pct(0.99)), s.elapsed.Round(time.Second), diskUse(st.mio.DataDir()))
	}
	b.StopTimer()
	b.ReportMetric(all.perSec(), "ws/s")
	b.ReportMetric(ms(all.lat.pct(0.50)), "p50-ms")
	fmt.Println(all.line("all blocks", c))
}

// diskUse is the size of the files under dir, for the MinIO column; ""
// when it cannot be read (the figure is a hint, not the measure).
func diskUse(dir string) string {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a file MinIO removed meanwhile
		}
		if info, ierr := d.Info(); ierr == nil && !d.IsDir() {
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%.1f MB", float64(total)/1e6)
}
