package bench

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minio/madmin-go/v3"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// BenchmarkMinIOStart times MinIO's start (until its cluster health check
// answers, IAM loaded) on its own data as it grows the way workspaces grow
// it: each workspace a bucket, its two policies and one key pair per
// member (an IAM user with its policy mapping). The stages tell apart what
// the start pays for: 1,000 workspaces with one member each; two more
// members in each (users alone); 2,000 more workspaces; then 2,000 bare
// buckets and 2,000 bare policies.
func BenchmarkMinIOStart(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	dir := b.TempDir()
	mio, err := minioserver.Start(ctx, minioserver.Options{DataDir: dir})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = mio.Stop() })
	addr := mio.Endpoint()
	store, err := objectstore.New(objectstore.Config{Endpoint: addr, AccessKey: mio.RootUser(),
		SecretKey: mio.RootPassword(), Region: mio.Region()})
	if err != nil {
		b.Fatal(err)
	}
	adm, err := madmin.NewWithOptions(addr, &madmin.Options{Creds: credentials.NewStaticV4(mio.RootUser(), mio.RootPassword(), "")})
	if err != nil {
		b.Fatal(err)
	}
	var answered []time.Duration // when each of startProbes first answered, in the last restart
	restart := func() time.Duration {
		b.Helper()
		if err := mio.Stop(); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		wctx, stopWatching := context.WithCancel(ctx)
		defer stopWatching()
		watched := watchStart(wctx, "http://"+addr, adm, t0)
		mio, err = minioserver.Start(ctx, minioserver.Options{DataDir: dir, Addr: addr, StartTimeout: 10 * time.Minute})
		if err != nil {
			b.Fatal(err)
		}
		took := time.Since(t0)
		// What has not answered 30 s after the start is shown as never.
		time.AfterFunc(30*time.Second, stopWatching)
		answered = <-watched
		return took
	}
	var n iamCounts
	stages := []struct {
		what string
		grow func(i int) error
		k    int
	}{
		{"1,000 workspaces, one member each", func(i int) error { return n.workspace(ctx, store, i, 1) }, 1000},
		{"two more members in each", func(i int) error { return n.members(ctx, store, i, 1, 3) }, 1000},
		{"2,000 more workspaces, one member each", func(i int) error { return n.workspace(ctx, store, 1000+i, 1) }, 2000},
		{"2,000 bare buckets", func(i int) error { return n.bucket(ctx, store, fmt.Sprintf("ws-bare-%d", i)) }, 2000},
		{"2,000 bare policies", func(i int) error { return n.policy(ctx, store, fmt.Sprintf("ws-bare-policy-%d", i)) }, 2000},
	}
	empty := restart()
	b.ResetTimer()
	fmt.Printf("MinIO start on its own data (until /minio/health/cluster answers), empty: %s\n", empty.Round(time.Millisecond))
	fmt.Printf("  %-40s %8s %9s %8s %10s   %s\n", "after adding", "buckets", "policies", "users", "start",
		"first answer of: "+strings.Join(startProbeNames, ", "))
	const c = 4 // MinIO's IAM writes level off beyond it (MEASUREMENTS.md)
	for _, st := range stages {
		var failed atomic.Value
		inParallel(st.k, c, func(i int) {
			if err := st.grow(i); err != nil {
				failed.Store(err)
			}
		})
		if err, ok := failed.Load().(error); ok {
			b.Fatal(err)
		}
		took := restart()
		firsts := make([]string, len(answered))
		for i, d := range answered {
			firsts[i] = "-"
			if d > 0 {
				firsts[i] = d.Round(100 * time.Millisecond).String()
			}
		}
		fmt.Printf("  %-40s %8d %9d %8d %10s   %s\n", st.what, n.buckets.Load(), n.policies.Load(), n.users.Load(),
			took.Round(time.Millisecond), strings.Join(firsts, ", "))
		b.ReportMetric(took.Seconds(), fmt.Sprintf("start-s@%db-%dp-%du", n.buckets.Load(), n.policies.Load(), n.users.Load()))
	}
}

// iamCounts makes what the create saga makes in MinIO, counting it.
type iamCounts struct{ buckets, policies, users atomic.Int64 }

// workspace makes workspace i's bucket, its two policies and the key
// pairs of its first members members.
func (n *iamCounts) workspace(ctx context.Context, store *objectstore.Store, i, members int) error {
	ws := fmt.Sprintf("ws-start-%d", i)
	if err := n.bucket(ctx, store, ws); err != nil {
		return err
	}
	if err := n.policy(ctx, store, ws); err != nil {
		return err
	}
	if err := store.EnsureReadOnlyPolicy(ctx, sagas.ReadOnlyPolicy(ws), ws); err != nil {
		return err
	}
	n.policies.Add(1)
	return n.members(ctx, store, i, 0, members)
}

// members makes the key pairs of workspace i's members from..to-1.
func (n *iamCounts) members(ctx context.Context, store *objectstore.Store, i, from, to int) error {
	ws := fmt.Sprintf("ws-start-%d", i)
	for m := from; m < to; m++ {
		secret, err := randomSecret()
		if err != nil {
			return err
		}
		if err := store.EnsureUser(ctx, accessKey(fmt.Sprintf("%s-m%d", ws, m)), secret, ws); err != nil {
			return fmt.Errorf("member %d of %s: %w", m, ws, err)
		}
		n.users.Add(1)
	}
	return nil
}

func (n *iamCounts) bucket(ctx context.Context, store *objectstore.Store, name string) error {
	if err := store.EnsureBucket(ctx, name); err != nil {
		return err
	}
	n.buckets.Add(1)
	return nil
}

// policy makes the bucket policy of name (its bucket need not exist).
func (n *iamCounts) policy(ctx context.Context, store *objectstore.Store, name string) error {
	if err := store.EnsureBucketPolicy(ctx, name, name); err != nil {
		return err
	}
	n.policies.Add(1)
	return nil
}

// startProbeNames are what watchStart times: MinIO's three health
// checks, and an IAM read through the admin API (what a worker's step
// needs).
var startProbeNames = []string{"live", "ready", "cluster", "IAM read"}

// watchStart polls a starting MinIO at base and sends, once all have
// answered or ctx ends, when each of startProbeNames first did, from t0
// (0 for never).
func watchStart(ctx context.Context, base string, adm *madmin.AdminClient, t0 time.Time) <-chan []time.Duration {
	out := make(chan []time.Duration, 1)
	c := &http.Client{Timeout: time.Second}
	get := func(path string) bool {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path, nil)
		if err != nil {
			return false
		}
		resp, err := c.Do(req)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	probes := []func() bool{
		func() bool { return get("/minio/health/live") },
		func() bool { return get("/minio/health/ready") },
		func() bool { return get("/minio/health/cluster") },
		func() bool {
			actx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			_, err := adm.InfoCannedPolicyV2(actx, "ws-start-0")
			return err == nil
		},
	}
	go func() {
		at := make([]time.Duration, len(probes))
		for left := len(probes); left > 0 && ctx.Err() == nil; {
			for i, p := range probes {
				if at[i] == 0 && p() {
					at[i], left = time.Since(t0), left-1
				}
			}
			time.Sleep(50 * time.Millisecond) // polling interval
		}
		out <- at
	}()
	return out
}
