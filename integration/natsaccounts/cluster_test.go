package natsaccounts

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
)

// TestCluster starts deploy/nats/cluster/n1..n3.conf on loopback (ports
// moved to free ones, routes rewritten to match), lets the provisioner
// user set the topology up with three replicas, and publishes and reads
// through a stream leader's shutdown.
func TestCluster(t *testing.T) {
	pw := setPasswords(t)
	ports := [3]int{freePort(t), freePort(t), freePort(t)}
	var all []*server.Options
	for i := range 3 {
		opts := loadConf(t, fmt.Sprintf(clusterConf, i+1))
		checkClusterConf(t, opts, i+1)
		opts.Cluster.Host, opts.Cluster.Port = "127.0.0.1", ports[i]
		opts.Routes = nil
		for _, p := range ports {
			opts.Routes = append(opts.Routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
		}
		all = append(all, opts)
	}
	var servers []*server.Server
	var urls []string
	for _, opts := range all {
		s, _ := startServer(t, opts)
		servers = append(servers, s)
		urls = append(urls, s.ClientURL())
	}

	prov := dial(t, strings.Join(urls, ","), "provisioner", pw.provisioner, "")
	js, err := jetstream.New(prov.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	// The meta leader is elected after the routes are up: retry until the
	// cluster takes the replicated streams.
	eventually(t, 90*time.Second, "EnsureTopology with 3 replicas", func() error {
		actx, acancel := context.WithTimeout(ctx, 10*time.Second)
		defer acancel()
		return events.EnsureTopology(actx, js, events.TopologyConfig{Replicas: 3})
	})
	t.Logf("cluster formed and topology created with R3 in %s", time.Since(start).Round(time.Millisecond))

	stream := mustStream(t, ctx, js, events.CommandsStream)
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("commands stream is not on three servers: %+v", info.Cluster)
	}
	for _, kc := range events.KVConfigs(events.TopologyConfig{Replicas: 3}) {
		kv, err := js.KeyValue(ctx, kc.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		st, err := kv.Status(ctx)
		if err != nil || st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas != 3 {
			t.Fatalf("kv %s not replicated: %v", kc.Bucket, err)
		}
	}
	// A replicated bucket is read through its leader ($JS.API.STREAM.MSG.GET,
	// not $JS.API.DIRECT.GET), which the provisioner user may ask.
	names, err := js.KeyValue(ctx, events.NamesBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := names.Put(ctx, "ws-read-check", []byte("reserved")); err != nil {
		t.Fatal(err)
	}
	if e, err := names.Get(ctx, "ws-read-check"); err != nil || string(e.Value()) != "reserved" {
		t.Fatalf("read of a replicated bucket as the provisioner user: %v", err)
	}

	v, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	pub := events.NewPublisher(js, v)
	publish := func(name string) {
		t.Helper()
		env := mustEnvelope(t, name, &events.Create{PreferredName: strings.TrimPrefix(name, "ws-"), DefaultOwner: "example-user-1"})
		eventually(t, 30*time.Second, "publish "+name, func() error {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			defer acancel()
			_, err := pub.Publish(actx, env)
			return err
		})
	}
	publish("ws-one")

	// Stop the stream's leader: the two others elect a new one and keep
	// both the old message and new publishes.
	leader := info.Cluster.Leader
	for _, s := range servers {
		if s.Name() == leader {
			s.Shutdown()
			s.WaitForShutdown()
		}
	}
	publish("ws-two")
	eventually(t, 30*time.Second, "read both commands after failover", func() error {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		defer acancel()
		s, err := js.Stream(actx, events.CommandsStream)
		if err != nil {
			return err
		}
		for _, subj := range []string{"workspace.cmd.ws-one.create", "workspace.cmd.ws-two.create"} {
			if _, err := s.GetLastMsgForSubject(actx, subj); err != nil {
				return fmt.Errorf("%s: %w", subj, err)
			}
		}
		return nil
	})
}

// checkClusterConf checks what each node's file says before the test
// moves its ports.
func checkClusterConf(t *testing.T, opts *server.Options, n int) {
	t.Helper()
	if opts.ServerName != fmt.Sprintf("n%d", n) || opts.Cluster.Name != "workspaces" || !opts.JetStream {
		t.Fatalf("n%d: server %q cluster %q jetstream %v", n, opts.ServerName, opts.Cluster.Name, opts.JetStream)
	}
	if opts.Cluster.Host != "127.0.0.1" || opts.Cluster.Port != 6221+n {
		t.Fatalf("n%d: cluster listen %s:%d", n, opts.Cluster.Host, opts.Cluster.Port)
	}
	if len(opts.Routes) != 3 {
		t.Fatalf("n%d: %d routes, want all three nodes", n, len(opts.Routes))
	}
	for _, r := range opts.Routes {
		if r.Hostname() != "127.0.0.1" {
			t.Fatalf("n%d: route %s is not on loopback", n, r)
		}
	}
}
