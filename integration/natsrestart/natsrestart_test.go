// Package natsrestart proves that the system rides through a restart of
// its NATS server: the provisioner (API, worker and projection, the real
// binary) on a NATS server stopped during 100 creations and restarted on
// its store at the same address, with a real MinIO and the Keycloak
// emulator. Every workspace ends ready, with one create command, one of
// each event and one client, bucket and owner key pair.
package natsrestart

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/events"
	"github.com/eo-workspaces/provisioner/integration/stacktest"
	"github.com/eo-workspaces/provisioner/stack/census"
	"github.com/eo-workspaces/provisioner/stack/kcemu"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

const (
	creations = 100
	// downAfter creations accepted, NATS stops for outage.
	downAfter = 30
	outage    = 15 * time.Second
)

// natsServer is an in-process JetStream server with a file store that
// can be stopped and started again on the same store and address.
type natsServer struct {
	dir  string
	port int
	s    *server.Server
}

func (n *natsServer) start(t *testing.T) {
	t.Helper()
	s, err := server.NewServer(&server.Options{ServerName: "restartable", Host: "127.0.0.1", Port: n.port,
		JetStream: true, StoreDir: n.dir, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats not ready")
	}
	n.s = s
}

func (n *natsServer) stop() {
	n.s.Shutdown()
	n.s.WaitForShutdown()
}

func (n *natsServer) url() string { return "nats://127.0.0.1:" + strconv.Itoa(n.port) }

func TestNATSRestartDuringCreations(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	dir := t.TempDir()
	ns := &natsServer{dir: filepath.Join(dir, "nats"), port: freePort(t)}
	ns.start(t)
	t.Cleanup(func() { ns.stop() })
	mio, err := minioserver.Start(ctx, minioserver.Options{DataDir: filepath.Join(dir, "minio")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mio.Stop() })
	emu, err := kcemu.Start(ctx, kcemu.Config{DevRealm: true, AdminUser: "admin", AdminPassword: "admin"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = emu.Close() })
	api := startProvisioner(t, ctx, dir, ns, mio, emu)
	tok, err := stacktest.PasswordToken(ctx, emu.URL(), kcemu.DevRealmName, kcemu.DevPublicClientID, kcemu.DevAdminUser, kcemu.DevPassword, "openid")
	if err != nil {
		t.Fatal(err)
	}

	names := make([]string, creations)
	accepted := make(chan struct{}, creations)
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := range names {
			names[i] = createRetrying(t, ctx, api, tok, fmt.Sprintf("natsrestart-%03d", i))
			accepted <- struct{}{}
		}
	})
	for range downAfter {
		<-accepted
	}
	ns.stop()
	t.Logf("NATS stopped after %d creations accepted", downAfter)
	select { // the outage itself: a duration, nothing to await
	case <-time.After(outage):
	case <-ctx.Done():
		t.Fatal(ctx.Err())
	}
	ns.start(t)
	back := time.Now()
	wg.Wait()
	waitAllReady(t, api, tok, names)
	t.Logf("%d creations, NATS stopped %s and restarted on its store: all ready %s after it was back",
		creations, outage, time.Since(back).Round(time.Second))

	js := connect(t, ns.url())
	assertOnce(t, ctx, js, names)
	assertOneOfEach(t, ctx, mio, emu, names)
}

// createRetrying posts a creation until it is accepted, with one
// Idempotency-Key, as a client does through an outage; it returns the
// workspace's name.
func createRetrying(t *testing.T, ctx context.Context, api, tok, name string) string {
	body := fmt.Sprintf(`{"preferred_name":%q,"default_owner":%q}`, name, kcemu.DevUser1)
	for {
		req, err := http.NewRequestWithContext(ctx, "POST", api+"/workspaces", bytes.NewBufferString(body))
		if err != nil {
			t.Error(err)
			return ""
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Idempotency-Key", "create-"+name)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var out struct{ Name string }
			_ = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusAccepted:
				return out.Name
			case resp.StatusCode < 500:
				t.Errorf("create %s: %d", name, resp.StatusCode)
				return ""
			}
		}
		select { // a client's pause before it tries again
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
			t.Error(ctx.Err())
			return ""
		}
	}
}

func waitAllReady(t *testing.T, api, tok string, names []string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Minute)
	for _, ws := range names {
		for {
			code, view := stacktest.CallAPI(t, "GET", api+"/workspaces/"+ws, tok, "")
			st, _ := view["status"].(string)
			if code == http.StatusOK && st == events.StatusReady {
				break
			}
			if st == events.StatusFailed {
				t.Fatalf("%s failed: %v", ws, view)
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s is %d %v, not ready", ws, code, view)
			}
			time.Sleep(100 * time.Millisecond) // polling interval, as a client polls
		}
	}
}

// assertOnce checks the streams: one create command per workspace, and
// every workspace's events by type (and step) the same as a creation
// without any outage publishes, no event id twice.
func assertOnce(t *testing.T, ctx context.Context, js jetstream.JetStream, names []string) {
	t.Helper()
	cmds := countBy(t, ctx, js, events.CommandsStream, func(env events.Envelope) string { return env.Type })
	evs := countBy(t, ctx, js, events.EventsStream, eventKey)
	want := map[string]int{
		events.TypeStatusChanged + "/provisioning": 1, events.TypeStatusChanged + "/ready": 1,
		events.TypeMemberAdded: 1,
	}
	for _, ws := range names {
		if n := cmds[ws][events.TypeCreate]; n != 1 || len(cmds[ws]) != 1 {
			t.Errorf("%s: commands %v, want one create", ws, cmds[ws])
		}
		for k, n := range want {
			if evs[ws][k] != n {
				t.Errorf("%s: %d %s, want %d (all: %v)", ws, evs[ws][k], k, n, evs[ws])
			}
		}
		for k, n := range evs[ws] {
			if n != 1 {
				t.Errorf("%s: %s published %d times", ws, k, n)
			}
		}
		if len(evs[ws]) != len(evs[names[0]]) {
			t.Errorf("%s: events %v, the first workspace's %v", ws, evs[ws], evs[names[0]])
		}
	}
}

// eventKey tells events apart: type, and the status or step they are
// about.
func eventKey(env events.Envelope) string {
	var d struct{ Status, Step string }
	_ = json.Unmarshal(env.Data, &d)
	switch {
	case d.Status != "":
		return env.Type + "/" + d.Status
	case d.Step != "":
		return env.Type + "/" + d.Step
	}
	return env.Type
}

// countBy reads a whole stream and counts its messages by workspace and
// key; a message id seen twice fails t.
func countBy(t *testing.T, ctx context.Context, js jetstream.JetStream, stream string, key func(events.Envelope) string) map[string]map[string]int {
	t.Helper()
	c, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	out, ids := map[string]map[string]int{}, map[string]bool{}
	for {
		batch, err := c.FetchNoWait(1000)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			var env events.Envelope
			if err := json.Unmarshal(m.Data(), &env); err != nil {
				t.Fatalf("%s: %v", m.Subject(), err)
			}
			if ids[env.ID] {
				t.Errorf("%s: id %s twice", stream, env.ID)
			}
			ids[env.ID] = true
			if out[env.Subject] == nil {
				out[env.Subject] = map[string]int{}
			}
			out[env.Subject][key(env)]++
		}
		if err := batch.Error(); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			return out
		}
	}
}

// assertOneOfEach checks the providers: one Keycloak client and one
// owner key pair per workspace.
func assertOneOfEach(t *testing.T, ctx context.Context, mio *minioserver.Server, emu *kcemu.Server, names []string) {
	t.Helper()
	c, err := census.Take(ctx, census.Keycloak{URL: emu.URL(), AdminUser: "admin", AdminPassword: "admin", Realm: kcemu.DevRealmName}, mio)
	if err != nil {
		t.Fatal(err)
	}
	for _, ws := range names {
		if c.Users[ws] != 1 || c.Clients[ws] != 1 || c.Buckets[ws] != 1 {
			t.Errorf("%s: %d key pairs, %d clients, %d buckets; want 1 of each", ws, c.Users[ws], c.Clients[ws], c.Buckets[ws])
		}
	}
}

func startProvisioner(t *testing.T, ctx context.Context, dir string, ns *natsServer, mio *minioserver.Server, emu *kcemu.Server) string {
	t.Helper()
	bin := filepath.Join(dir, "provisioner")
	if out, err := exec.CommandContext(ctx, "go", "build", "-race", "-o", bin, "github.com/eo-workspaces/provisioner/cmd/provisioner").CombinedOutput(); err != nil {
		t.Fatalf("build provisioner: %v\n%s", err, out)
	}
	addr := "127.0.0.1:" + strconv.Itoa(freePort(t))
	logs := &stacktest.SyncBuffer{}
	cmd := exec.Command(bin, "--http-addr", addr, "--nats-url", ns.url(),
		"--keycloak-url", emu.URL(), "--keycloak-realm", kcemu.DevRealmName,
		"--keycloak-client-id", kcemu.DevWorkerClientID, "--keycloak-client-secret", kcemu.DevWorkerClientSecret,
		"--s3-endpoint", mio.URL(), "--s3-region", mio.Region(),
		"--minio-access-key", mio.RootUser(), "--minio-secret-key", mio.RootPassword(),
		"--secret-key", "natsrestart-secret-key-natsrestart",
		// No drift sweep: the test counts every command of every workspace,
		// and a sweep at a ten-minute boundary would add a reconcile.
		"--reconcile-interval", "0")
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			if err != nil {
				t.Errorf("provisioner exit: %v", err)
			}
		case <-time.After(45 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("provisioner ignored SIGTERM")
		}
		if t.Failed() {
			t.Logf("provisioner logs:\n%s", tail(logs.String()))
		}
	})
	api := "http://" + addr
	stacktest.WaitCond(t, time.Minute, "the provisioner ready", func() bool { return stacktest.HTTPStatus(api+"/readyz") == http.StatusOK })
	return api
}

func connect(t *testing.T, url string) jetstream.JetStream {
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

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func tail(s string) string {
	if len(s) > 8000 {
		return s[len(s)-8000:]
	}
	return s
}
