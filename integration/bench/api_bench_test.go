// Package bench holds the benchmarks that print the figures the issues
// set targets for. Run them with `go tool task bench`; they are not
// timed tests and assert nothing about speed.
package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/eo-workspaces/provisioner/auth"
	"github.com/eo-workspaces/provisioner/bus"
	"github.com/eo-workspaces/provisioner/bus/bustest"
	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/handlers/api"
	"github.com/eo-workspaces/provisioner/handlers/projection"
	"github.com/eo-workspaces/provisioner/readmodel"
	"github.com/eo-workspaces/provisioner/sagas/names"
	"github.com/eo-workspaces/provisioner/schemas"
)

// apiStack is the API with its embedded JetStream, projection and reader,
// served over real loopback HTTP.
type apiStack struct {
	url    string
	bus    *bus.Bus
	pub    *events.Publisher
	reader *readmodel.Reader
}

func startAPI(b *testing.B) *apiStack {
	b.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(cancel)
	log := zap.NewNop()
	bs := bustest.Start(b)
	v, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	pub := events.NewPublisher(bs.JS, v)
	proj, err := projection.NewProjector(ctx, bs.JS, v, log)
	if err != nil {
		b.Fatal(err)
	}
	go func() { _ = proj.Run(ctx) }()
	reader := readmodel.NewReader(log)
	go func() { _ = reader.Run(ctx, bs.JS) }()
	<-reader.Ready()
	namesKV, _ := bs.JS.KeyValue(ctx, events.NamesBucket)
	idem, _ := bs.JS.KeyValue(ctx, events.IdempotencyBucket)
	h, err := api.New(api.Config{}, api.Deps{
		Publisher: pub, Workspaces: reader, Names: names.NewKV(namesKV), Idempotency: idem, JS: bs.JS,
		Auth: auth.Static(auth.Principal{Username: "bench", Admin: true}),
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
	return &apiStack{url: "http://" + ln.Addr().String(), bus: bs, pub: pub, reader: reader}
}

func client() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, MaxConnsPerHost: 256}, Timeout: 10 * time.Second}
}

// latencies collects request durations from many goroutines.
type latencies struct {
	mu   sync.Mutex
	all  []time.Duration
	errs atomic.Int64
}

func (l *latencies) add(d time.Duration) { l.mu.Lock(); l.all = append(l.all, d); l.mu.Unlock() }

func (l *latencies) pct(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.all) == 0 {
		return 0
	}
	s := slices.Clone(l.all)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// record times one request and keeps its duration when the answer has
// status want; a failed request or another status counts as an error.
func (l *latencies) record(want int, do func() (*http.Response, error)) {
	t0 := time.Now()
	resp, err := do()
	if err != nil {
		l.errs.Add(1)
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != want {
		l.errs.Add(1)
		return
	}
	l.add(time.Since(t0))
}

// post is POST /workspaces with a JSON body.
func post(c *http.Client, api, body string) func() (*http.Response, error) {
	return func() (*http.Response, error) {
		return c.Post(api+"/workspaces", "application/json", strings.NewReader(body))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkAPIPost: closed-loop POST /workspaces from 32 clients, each
// request a new workspace, as fast as the server answers.
func BenchmarkAPIPost(b *testing.B) {
	st := startAPI(b)
	c := client()
	const clients, total = 32, 20000
	var next atomic.Int64
	lat := &latencies{}
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				body := fmt.Sprintf(`{"preferred_name":"bench-%d","default_owner":"example-user-1"}`, i)
				lat.record(http.StatusAccepted, post(c, st.url, body))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	rps := float64(len(lat.all)) / elapsed.Seconds()
	b.ReportMetric(rps, "req/s")
	b.ReportMetric(ms(lat.pct(0.50)), "p50-ms")
	b.ReportMetric(ms(lat.pct(0.99)), "p99-ms")
	fmt.Printf("POST /workspaces: %d requests from %d clients in %s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, errors %d (target >= 3000 req/s, p99 <= 20 ms)\n",
		len(lat.all), clients, elapsed.Round(time.Millisecond), rps, ms(lat.pct(0.50)), ms(lat.pct(0.99)), lat.errs.Load())
	if lat.errs.Load() > 0 {
		b.Errorf("%d requests failed", lat.errs.Load())
	}
}

// BenchmarkAPIGet: open-loop GET /workspaces/{name} at 1,000 requests/s
// over 10,000 projected workspaces.
func BenchmarkAPIGet(b *testing.B) {
	st := startAPI(b)
	const workspaces, rate, seconds = 10000, 1000, 10
	seed(b, st, workspaces)
	c := client()
	lat := &latencies{}
	b.ResetTimer()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	var wg sync.WaitGroup
	for range rate * seconds {
		<-tick.C
		name := fmt.Sprintf("ws-seed-%d", rand.IntN(workspaces))
		wg.Go(func() {
			lat.record(http.StatusOK, func() (*http.Response, error) { return c.Get(st.url + "/workspaces/" + name) })
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(ms(lat.pct(0.50)), "p50-ms")
	b.ReportMetric(ms(lat.pct(0.99)), "p99-ms")
	fmt.Printf("GET /workspaces/{name}: %d requests at %d req/s over %d workspaces: p50 %.2f ms, p99 %.2f ms, errors %d (target p99 <= 5 ms)\n",
		len(lat.all), rate, workspaces, ms(lat.pct(0.50)), ms(lat.pct(0.99)), lat.errs.Load())
	if lat.errs.Load() > 0 {
		b.Errorf("%d requests failed", lat.errs.Load())
	}
}

// seed projects n workspaces by publishing their status events, the way
// the worker does, and waits for the reader to hold them all.
func seed(b *testing.B, st *apiStack, n int) {
	b.Helper()
	ctx := context.Background()
	begin := time.Now()
	for i := range n {
		env, err := events.New(fmt.Sprintf("ws-seed-%d", i), &events.StatusChanged{Status: events.StatusReady, Owner: "example-user-1"}, events.Meta{Actor: "bench"})
		if err != nil {
			b.Fatal(err)
		}
		msg, err := st.pub.Message(env)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.bus.JS.PublishMsgAsync(msg); err != nil {
			b.Fatal(err)
		}
	}
	<-st.bus.JS.PublishAsyncComplete()
	deadline := time.Now().Add(5 * time.Minute)
	for st.reader.Len() < n {
		if time.Now().After(deadline) {
			b.Fatalf("projection holds %d of %d workspaces", st.reader.Len(), n)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
	_ = ctx
	fmt.Printf("seeded %d projected workspaces in %s\n", n, time.Since(begin).Round(time.Millisecond))
}

// BenchmarkAPIPostAtRate: open-loop POST /workspaces at the target rate
// of 3,000 requests/s for 5 s, so latency is measured at that load rather
// than at saturation.
func BenchmarkAPIPostAtRate(b *testing.B) {
	st := startAPI(b)
	c := client()
	const rate, seconds = 3000, 5
	lat := &latencies{}
	b.ResetTimer()
	begin := time.Now()
	var wg sync.WaitGroup
	for i := range rate * seconds {
		// Pace by the schedule, not a ticker, so a slow tick does not lower the offered rate.
		if d := time.Until(begin.Add(time.Duration(i) * time.Second / rate)); d > 0 {
			time.Sleep(d)
		}
		wg.Go(func() {
			body := fmt.Sprintf(`{"preferred_name":"rate-%d","default_owner":"example-user-1"}`, i)
			lat.record(http.StatusAccepted, post(c, st.url, body))
		})
	}
	wg.Wait()
	elapsed := time.Since(begin)
	b.StopTimer()
	b.ReportMetric(ms(lat.pct(0.50)), "p50-ms")
	b.ReportMetric(ms(lat.pct(0.99)), "p99-ms")
	fmt.Printf("POST /workspaces at %d req/s offered: %d answered in %s (%.0f req/s), p50 %.2f ms, p99 %.2f ms, errors %d (target p99 <= 20 ms)\n",
		rate, len(lat.all), elapsed.Round(time.Millisecond), float64(len(lat.all))/elapsed.Seconds(), ms(lat.pct(0.50)), ms(lat.pct(0.99)), lat.errs.Load())
	if lat.errs.Load() > 0 {
		b.Errorf("%d requests failed", lat.errs.Load())
	}
}
