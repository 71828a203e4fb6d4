package bustest

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Node is one nats-server process of a cluster started by
// StartClusterProcesses.
type Node struct {
	Name string
	URL  string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

// Kill ends the server with SIGKILL, as a lost machine would: unlike an
// in-process Shutdown, it hands no leadership over and says goodbye to no
// client, so the others only notice by its silence.
func (n *Node) Kill(tb testing.TB) {
	tb.Helper()
	if err := n.cmd.Process.Kill(); err != nil {
		tb.Fatalf("kill %s: %v", n.Name, err)
	}
	<-n.done
}

var (
	buildOnce sync.Once
	binary    string
	buildErr  error
)

// serverBinary builds nats-server, at the version go.mod pins, once per
// test binary (Go's build cache makes it quick after the first time).
func serverBinary() (string, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "nats-server-bin")
		if err != nil {
			buildErr = err
			return
		}
		binary = filepath.Join(dir, "nats-server")
		out, err := exec.Command("go", "build", "-o", binary, "github.com/nats-io/nats-server/v2").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("build nats-server: %w\n%s", err, out)
		}
	})
	return binary, buildErr
}

// StartClusterProcesses starts a three-node JetStream cluster as
// nats-server processes on loopback, for tests that kill a node outright,
// and returns them once the cluster answers JetStream requests. As with
// StartClusterNodes, a node that cannot bind the ports chosen for it is
// taken as a port lost to another test: the cluster starts again on
// fresh ones.
func StartClusterProcesses(tb testing.TB) []*Node {
	tb.Helper()
	bin, err := serverBinary()
	if err != nil {
		tb.Fatal(err)
	}
	const attempts = 3
	for range attempts {
		var nodes []*Node
		if nodes, err = tryClusterProcesses(tb, bin); err == nil {
			tb.Cleanup(func() { stopAll(nodes) })
			waitJetStream(tb, URLs(nodes))
			return nodes
		}
	}
	tb.Fatalf("three-node cluster of processes, %d attempts: %v", attempts, err)
	return nil
}

func tryClusterProcesses(tb testing.TB, bin string) ([]*Node, error) {
	cports := [3]int{freePort(tb), freePort(tb), freePort(tb)}
	var routes []string
	for _, p := range cports {
		routes = append(routes, (&url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)}).String())
	}
	var nodes []*Node
	for i, cp := range cports {
		port := freePort(tb)
		n := &Node{Name: fmt.Sprintf("n%d", i+1), URL: fmt.Sprintf("nats://127.0.0.1:%d", port),
			logs: &bytes.Buffer{}, done: make(chan struct{})}
		n.cmd = exec.Command(bin, "-js", "-sd", tb.TempDir(), "-a", "127.0.0.1", "-p", fmt.Sprint(port),
			"-n", n.Name, "--cluster_name", "test", "--cluster", fmt.Sprintf("nats://127.0.0.1:%d", cp),
			"--routes", strings.Join(routes, ","))
		n.cmd.Stdout, n.cmd.Stderr = n.logs, n.logs
		n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := n.cmd.Start(); err != nil {
			stopAll(nodes)
			return nil, fmt.Errorf("start %s: %w", n.Name, err)
		}
		go func() { _ = n.cmd.Wait(); close(n.done) }()
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if err := waitConnectable(n); err != nil {
			stopAll(nodes)
			return nil, err
		}
	}
	return nodes, nil
}

// stopAll ends the nodes still running, gently first.
func stopAll(nodes []*Node) {
	for _, n := range nodes {
		select {
		case <-n.done:
			continue
		default:
		}
		_ = n.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			_ = n.cmd.Process.Kill()
			<-n.done
		}
	}
}

// waitJetStream waits until the cluster answers JetStream requests: its
// meta leader is elected, so what starts next does not wait for that.
func waitJetStream(tb testing.TB, urls string) {
	tb.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		tb.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("cluster %s elected no JetStream leader: %v", urls, err)
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

func waitConnectable(n *Node) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		nc, err := nats.Connect(n.URL, nats.Timeout(time.Second))
		if err == nil {
			nc.Close()
			return nil
		}
		select {
		case <-n.done:
			return fmt.Errorf("nats-server %s exited:\n%s", n.Name, n.logs)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nats-server %s takes no clients: %w\n%s", n.Name, err, n.logs)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

// URLs lists the nodes' client URLs, for a client of the whole cluster.
func URLs(nodes []*Node) string {
	var out []string
	for _, n := range nodes {
		out = append(out, n.URL)
	}
	return strings.Join(out, ",")
}
