package bustest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
)

// StartCluster starts a three-server JetStream cluster in-process, on
// loopback, and returns a connection to it with the streams and KV buckets
// set up with three replicas: what `--nats-replicas 3` runs on.
func StartCluster(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	js := StartBareCluster(tb)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := events.EnsureTopology(ctx, js, events.TopologyConfig{Replicas: 3}); err != nil {
		tb.Fatalf("topology with three replicas: %v", err)
	}
	return js
}

// StartBareCluster is StartCluster without the streams and buckets.
func StartBareCluster(tb testing.TB) jetstream.JetStream {
	tb.Helper()
	return Connect(tb, StartClusterServers(tb)...)
}

// Connect returns a JetStream connection to the servers at urls.
func Connect(tb testing.TB, urls ...string) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		tb.Fatalf("connect to %v: %v", urls, err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	return js
}

// StartClusterServers starts the three servers of a cluster and returns
// their client URLs.
func StartClusterServers(tb testing.TB) []string {
	tb.Helper()
	var urls []string
	for _, s := range StartClusterNodes(tb) {
		urls = append(urls, s.ClientURL())
	}
	return urls
}

// StartClusterNodes starts the three servers of a cluster and returns
// them, for tests that stop one (Shutdown) as a node loss.
//
// The route ports are chosen before the servers bind them, so another
// test process can take one in between (it failed CI once); a cluster
// whose servers are not all listening is shut down and started again on
// fresh ports.
func StartClusterNodes(tb testing.TB) []*server.Server {
	tb.Helper()
	const attempts = 3
	var err error
	for range attempts {
		var nodes []*server.Server
		if nodes, err = tryClusterNodes(tb); err == nil {
			tb.Cleanup(func() { shutdown(nodes) })
			return nodes
		}
	}
	tb.Fatalf("three-node cluster, %d attempts: %v", attempts, err)
	return nil
}

func tryClusterNodes(tb testing.TB) ([]*server.Server, error) {
	ports := [3]int{freePort(tb), freePort(tb), freePort(tb)}
	var routes []*url.URL
	for _, p := range ports {
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
	}
	var nodes []*server.Server
	for i, p := range ports {
		opts := &server.Options{
			ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			JetStream: true, StoreDir: tb.TempDir(),
			Cluster: server.ClusterOpts{Name: "test", Host: "127.0.0.1", Port: p}, Routes: routes,
		}
		s, err := server.NewServer(opts)
		if err != nil {
			shutdown(nodes)
			return nil, fmt.Errorf("nats server %s: %w", opts.ServerName, err)
		}
		go s.Start()
		nodes = append(nodes, s)
	}
	for _, s := range nodes {
		if !s.ReadyForConnections(10 * time.Second) {
			shutdown(nodes)
			return nil, fmt.Errorf("nats server %s not listening on its client and route ports", s.Name())
		}
	}
	return nodes, nil
}

func shutdown(nodes []*server.Server) {
	for _, s := range nodes {
		s.Shutdown()
		s.WaitForShutdown()
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("listen: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
