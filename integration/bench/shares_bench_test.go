package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/api"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/sagas/objectstore"
	"github.com/eo-workspaces/provisioner/sagas/shares"
	"github.com/eo-workspaces/provisioner/schemas"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// BenchmarkShareDownloads prints how many downloads per second a share
// link of a small object serves (through the API: link checked, use
// counted by compare-and-set, object streamed from MinIO), beside a
// direct presigned GET of the same object from MinIO, measured in the
// same run, alternating rounds so both see the same machine.
// BENCH_DOWNLOADS per round (default 2000), BENCH_C at once (default 8),
// BENCH_SIZE bytes (default 4096).
func BenchmarkShareDownloads(b *testing.B) {
	n, c, size := envInt(b, "BENCH_DOWNLOADS", 2000), envInt(b, "BENCH_C", 8), envInt(b, "BENCH_SIZE", 4096)
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	mio, err := minioserver.Start(ctx, minioserver.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = mio.Stop() })
	const ws, key = "ws-bench-share", "results/small.bin"
	root, err := minio.New(mio.Endpoint(), &minio.Options{Creds: credentials.NewStaticV4(mio.RootUser(), mio.RootPassword(), ""), Region: mio.Region()})
	if err != nil {
		b.Fatal(err)
	}
	if err := root.MakeBucket(ctx, ws, minio.MakeBucketOptions{Region: mio.Region()}); err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte{'x'}, size)
	if _, err := root.PutObject(ctx, ws, key, bytes.NewReader(body), int64(size), minio.PutObjectOptions{}); err != nil {
		b.Fatal(err)
	}
	apiURL := startShareAPI(ctx, b, mio, ws)
	link := createLink(b, apiURL, ws, key)
	presigned, err := root.PresignedGetObject(ctx, ws, key, time.Hour, nil)
	if err != nil {
		b.Fatal(err)
	}
	hc := client()
	viaLink, direct := &latencies{}, &latencies{}
	var linkTime, directTime time.Duration
	b.ResetTimer()
	for range 3 {
		linkTime += getMany(b, hc, link, n, c, size, viaLink)
		directTime += getMany(b, hc, presigned.String(), n, c, size, direct)
	}
	b.StopTimer()
	linkRate, directRate := float64(3*n)/linkTime.Seconds(), float64(3*n)/directTime.Seconds()
	b.ReportMetric(linkRate, "share-downloads/s")
	b.ReportMetric(directRate, "presigned-downloads/s")
	fmt.Printf("share link, %d-byte object, %d downloads, %d at once: %.0f downloads/s, p50 %.2f ms, p99 %.2f ms\n",
		size, 3*n, c, linkRate, ms(viaLink.pct(0.5)), ms(viaLink.pct(0.99)))
	fmt.Printf("presigned GET straight from MinIO, same object, same run: %.0f downloads/s, p50 %.2f ms, p99 %.2f ms (share link: %.0f%% of it)\n",
		directRate, ms(direct.pct(0.5)), ms(direct.pct(0.99)), 100*linkRate/directRate)
}

// getMany GETs url n times, c at once, checking every answer, and
// returns how long it took.
func getMany(b *testing.B, hc *http.Client, url string, n, c, size int, lat *latencies) time.Duration {
	start := time.Now()
	inParallel(n, c, func(int) {
		t0 := time.Now()
		resp, err := hc.Get(url)
		if err != nil {
			b.Error(err)
			return
		}
		got, _ := io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || got != int64(size) {
			b.Errorf("GET: %d, %d bytes", resp.StatusCode, got)
			return
		}
		lat.add(time.Since(t0))
	})
	if b.Failed() {
		b.FailNow()
	}
	return time.Since(start)
}

// startShareAPI serves the API with share links over loopback HTTP, its
// caller "bench" a ws_access member of a ready ws.
func startShareAPI(ctx context.Context, b *testing.B, mio *minioserver.Server, ws string) string {
	bs := bustest.Start(b)
	v, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	kv := func(name string) jetstream.KeyValue {
		k, err := bs.JS.KeyValue(ctx, name)
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	raw, _ := json.Marshal(readmodel.Workspace{Name: ws, Status: events.StatusReady, Owner: "bench",
		Members: []readmodel.Member{{Username: "bench", Role: events.RoleAccess}}, CreatedAt: time.Now()})
	if _, err := kv(events.ProjectionBucket).Put(ctx, ws, raw); err != nil {
		b.Fatal(err)
	}
	reader := readmodel.NewReader(zap.NewNop())
	go func() { _ = reader.Run(ctx, bs.JS) }()
	<-reader.Ready()
	store, err := objectstore.New(objectstore.Config{Endpoint: mio.Endpoint(), AccessKey: mio.RootUser(), SecretKey: mio.RootPassword(), Region: mio.Region()})
	if err != nil {
		b.Fatal(err)
	}
	h, err := api.New(api.Config{}, api.Deps{
		Publisher: events.NewPublisher(bs.JS, v), Workspaces: reader, Names: names.NewKV(kv(events.NamesBucket)),
		Idempotency: kv(events.IdempotencyBucket), JS: bs.JS, Auth: auth.Static(auth.Principal{Username: "bench"}),
		Shares: shares.NewKV(kv(events.SharesBucket)), Objects: benchObjects{store},
	})
	if err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	b.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func createLink(b *testing.B, apiURL, ws, key string) string {
	resp, err := http.Post(apiURL+"/workspaces/"+ws+"/shares", "application/json", strings.NewReader(fmt.Sprintf(`{"path":%q,"expires_in":3600}`, key)))
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct{ URL string }
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusCreated {
		b.Fatalf("create link: %d %v", resp.StatusCode, err)
	}
	return out.URL
}

// benchObjects is the provisioner's own adapter (cmd/provisioner's
// objects), which a binary's package cannot lend.
type benchObjects struct{ store *objectstore.Store }

func (o benchObjects) Stat(ctx context.Context, bucket, key string) (api.ObjectInfo, error) {
	info, err := o.store.StatObject(ctx, bucket, key)
	if errors.Is(err, sagas.ErrNotFound) {
		return api.ObjectInfo{}, api.ErrNoObject
	}
	return api.ObjectInfo(info), err
}

func (o benchObjects) Open(ctx context.Context, bucket, key string, info api.ObjectInfo) io.ReadSeekCloser {
	return o.store.OpenObject(ctx, bucket, key, objectstore.ObjectInfo(info))
}

func (o benchObjects) Get(ctx context.Context, bucket, key string) (io.ReadSeekCloser, api.ObjectInfo, error) {
	body, info, err := o.store.GetObject(ctx, bucket, key)
	if errors.Is(err, sagas.ErrNotFound) {
		return nil, api.ObjectInfo{}, fmt.Errorf("%w: %w", api.ErrNoObject, err)
	}
	return body, api.ObjectInfo(info), err
}
