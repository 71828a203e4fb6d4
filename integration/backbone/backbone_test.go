// Package backbone tests the event backbone end to end: the real
// provisioner binary with its embedded JetStream, driven over HTTP and NATS
// as clients and other systems drive it, restarted on the same data.
package backbone

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/schemas"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "backbone-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "provisioner")
	out, err := exec.Command("go", "build", "-race", "-o", binary, "github.com/eo-workspaces/provisioner/cmd/provisioner").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build provisioner: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	_ = os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one running provisioner.
type proc struct {
	cmd       *exec.Cmd
	api, nats string
	logs      *bytes.Buffer
	done      chan struct{}
}

func start(t *testing.T, dataDir string) *proc {
	t.Helper()
	httpAddr, err := minioserver.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	natsAddr, err := minioserver.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{api: "http://" + httpAddr, nats: "nats://" + natsAddr, logs: &bytes.Buffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(binary, "--roles", "api,projection", "--insecure-no-auth",
		"--http-addr", httpAddr, "--nats-listen", natsAddr, "--data-dir", dataDir, "--secret-key", "test-key")
	p.cmd.Stdout, p.cmd.Stderr = p.logs, p.logs
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop(t) })
	waitFor(t, 60*time.Second, "readyz", func() bool {
		select {
		case <-p.done:
			t.Fatalf("provisioner exited early:\n%s", p.logs)
		default:
		}
		resp, err := http.Get(p.api + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return p
}

// stop sends SIGTERM and waits: a clean stop must finish by itself.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if code := p.cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("provisioner exited %d after SIGTERM:\n%s", code, p.logs)
		}
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		t.Errorf("provisioner ignored SIGTERM for 30s")
	}
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a wait for an outcome
	}
}

func request(t *testing.T, method, url, body string, hdr map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if len(raw) > 0 {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: body is not JSON: %s", method, url, raw)
		}
	}
	return resp.StatusCode, out
}

func jsConnect(t *testing.T, url string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func streamMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestCommandToProjectionAndRestart(t *testing.T) {
	ctx := context.Background()
	dataDir := t.TempDir()
	p := start(t, dataDir)
	js := jsConnect(t, p.nats)
	validator, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}

	// A create: 202 at once, and the command on its subject with a valid envelope.
	sub, err := js.OrderedConsumer(ctx, events.CommandsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"workspace.cmd.ws-team-a.create"}})
	if err != nil {
		t.Fatal(err)
	}
	hdr := map[string]string{"Idempotency-Key": "create-team-a-1"}
	code, body := request(t, "POST", p.api+"/workspaces", `{"preferred_name":"Team A","default_owner":"example-user-1"}`, hdr)
	if code != http.StatusAccepted || body["name"] != "ws-team-a" || body["status"] != "provisioning" {
		t.Fatalf("POST /workspaces = %d %v", code, body)
	}
	msg, err := sub.Next(jetstream.FetchMaxWait(10 * time.Second))
	if err != nil {
		t.Fatalf("no command on workspace.cmd.ws-team-a.create: %v", err)
	}
	env, err := events.Parse(msg.Data(), validator)
	if err != nil {
		t.Fatalf("command envelope invalid: %v", err)
	}
	if env.Type != events.TypeCreate || env.Subject != "ws-team-a" || env.Actor == "" || env.CorrelationID == "" ||
		msg.Headers().Get("Nats-Msg-Id") != env.ID {
		t.Fatalf("unexpected envelope %+v headers %v", env, msg.Headers())
	}

	// The same POST with the same key answers the same and publishes nothing new.
	code2, body2 := request(t, "POST", p.api+"/workspaces", `{"preferred_name":"Team A","default_owner":"example-user-1"}`, hdr)
	if code2 != code || fmt.Sprint(body2) != fmt.Sprint(body) {
		t.Fatalf("repeat answered %d %v, first %d %v", code2, body2, code, body)
	}
	if n := streamMsgs(t, js, events.CommandsStream); n != 1 {
		t.Fatalf("commands stream holds %d messages after a repeated POST, want 1", n)
	}
	// Another request for the same name is refused.
	if code, body := request(t, "POST", p.api+"/workspaces", `{"preferred_name":"team-a","default_owner":"x"}`, nil); code != http.StatusConflict {
		t.Fatalf("second create for ws-team-a = %d %v, want 409", code, body)
	}

	// Feed a status event as the worker would, and read it back.
	pub := events.NewPublisher(js, validator)
	status, _ := events.New("ws-team-a", &events.StatusChanged{Status: events.StatusFailed, Previous: events.StatusProvisioning,
		Owner: "example-user-1", LastError: "bucket exists and was not created by this system", FailedStep: "bucket"}, events.Caused(env))
	if _, err := pub.Publish(ctx, status); err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	waitFor(t, 10*time.Second, "the projected status", func() bool {
		_, got = request(t, "GET", p.api+"/workspaces/ws-team-a", "", nil)
		return got["status"] == events.StatusFailed
	})
	if got["owner"] != "example-user-1" || got["failed_step"] != "bucket" || got["last_error"] == nil || got["storage"] != nil {
		t.Fatalf("projected workspace %v", got)
	}
	_, list := request(t, "GET", p.api+"/workspaces?status=failed", "", nil)
	items, _ := list["items"].([]any)
	if len(items) != 1 || items[0].(map[string]any)["name"] != "ws-team-a" {
		t.Fatalf("list = %v", list)
	}

	// Restart on the same data: every command, event and projected workspace is still there.
	p.stop(t)
	p2 := start(t, dataDir)
	js2 := jsConnect(t, p2.nats)
	if n := streamMsgs(t, js2, events.CommandsStream); n != 1 {
		t.Fatalf("after restart the commands stream holds %d, want 1", n)
	}
	if n := streamMsgs(t, js2, events.EventsStream); n != 1 {
		t.Fatalf("after restart the events stream holds %d, want 1", n)
	}
	code, after := request(t, "GET", p2.api+"/workspaces/ws-team-a", "", nil)
	if code != http.StatusOK || after["status"] != events.StatusFailed || after["owner"] != "example-user-1" {
		t.Fatalf("after restart GET = %d %v", code, after)
	}
	// And the repeated POST still answers the same.
	if code, again := request(t, "POST", p2.api+"/workspaces", `{"preferred_name":"Team A","default_owner":"example-user-1"}`, hdr); code != http.StatusAccepted || fmt.Sprint(again) != fmt.Sprint(body) {
		t.Fatalf("idempotent repeat after restart = %d %v", code, again)
	}
}

// TestRoleWithoutAPIServesProbes: a process without the API role still
// answers liveness, readiness and metrics on --http-addr.
func TestRoleWithoutAPIServesProbes(t *testing.T) {
	httpAddr, err := minioserver.FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	cmd := exec.Command(binary, "--roles", "projection", "--http-addr", httpAddr, "--data-dir", t.TempDir())
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "readyz of the projection role", func() bool {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	for _, path := range []string{"/healthz", "/metrics"} {
		resp, err := http.Get("http://" + httpAddr + path)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
	if resp, err := http.Get("http://" + httpAddr + "/workspaces"); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("a process without the API role answered /workspaces with %d", resp.StatusCode)
		}
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, logs)
	}
}
