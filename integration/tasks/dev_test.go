// Package tasks tests the Taskfile's `dev`, `keycloak` and `keycloak:real` tasks exactly as
// an outside tool uses them: `go tool task ...` run as a child process in a
// fresh copy of the repository, then only what the README ("Quick start")
// promises: .dev/stack.env, its values, and a clean stop.
package tasks

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Nerzal/gocloak/v13"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
)

// firstStart bounds the first `go tool task dev` in a new checkout: it
// compiles the project's packages and links four binaries before anything
// starts, then the real Keycloak's first start (up to 2.5 minutes on a busy
// two-core machine). restart bounds a later one (a minute for Keycloak).
const (
	firstStart = 6 * time.Minute
	restart    = 4 * time.Minute
)

func TestTaskDev(t *testing.T) {
	root := checkoutRoot
	envPath := filepath.Join(root, ".dev", "stack.env")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()

	begin := time.Now()
	dev := stacktest.StartTask(t, root, nil, "dev")
	env := dev.WaitStackEnv(t, root, firstStart)
	t.Logf("go tool task dev: stack.env after %s (first start in a new checkout)", time.Since(begin).Round(time.Millisecond))
	dev.Record()
	devstack := dev.Find(t, "devstack")
	for _, comm := range []string{"task", "minio", "keycloak", "provisioner"} {
		dev.Find(t, comm)
	}

	name := useStack(t, ctx, env)

	// A second dev in the same checkout is refused at once, naming the first.
	begin = time.Now()
	second := stacktest.StartTask(t, root, nil, "dev")
	if code := second.ExitCode(t, 2*time.Minute); code == 0 {
		t.Fatalf("a second go tool task dev exited 0 while one runs, want a refusal:\n%s", second.Out.String())
	}
	t.Logf("second go tool task dev refused in %s", time.Since(begin).Round(time.Millisecond))
	msg := second.Out.String()
	for _, want := range []string{"another dev stack is running", "pid " + strconv.Itoa(devstack.Pid), filepath.Join(".dev", "dev.lock")} {
		if !strings.Contains(msg, want) {
			t.Errorf("refusal does not say %q:\n%s", want, stacktest.LastLines(msg, 10))
		}
	}
	if again := stacktest.ReadEnv(t, envPath); !maps.Equal(again, env) {
		t.Errorf("the refused second dev changed stack.env: %v, was %v", again, env)
	}

	stopFromTheTop(t, dev, envPath)

	// Restarted on the same state, then Ctrl-C as a terminal sends it: SIGINT
	// to the whole foreground process group.
	begin = time.Now()
	restarted := stacktest.StartTask(t, root, nil, "dev")
	env2 := restarted.WaitStackEnv(t, root, restart)
	t.Logf("go tool task dev restarted: stack.env after %s", time.Since(begin).Round(time.Millisecond))
	restarted.Record()
	token := passwordGrant(t, env2["KEYCLOAK_URL"], env2["KEYCLOAK_REALM"], "demo", "example-admin", "changeme")
	if code, _ := getWorkspace(t, env2["WORKSPACE_API"], name, token); code != http.StatusOK {
		t.Errorf("after a restart GET %s answered %d, want the kept workspace", name, code)
	}
	begin = time.Now()
	if err := syscall.Kill(-restarted.Pid(), syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := restarted.ExitCode(t, time.Minute); code != 0 {
		t.Errorf("go tool task dev exited %d after Ctrl-C, want 0", code)
	}
	restarted.WaitGone(t, 30*time.Second)
	if _, err := os.Stat(envPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stack.env still there after Ctrl-C (stat: %v)", err)
	}
	t.Logf("Ctrl-C to the process group: everything gone in %s", time.Since(begin).Round(time.Millisecond))
}

// stopFromTheTop sends one SIGTERM to the go process alone, as `kill <pid>`
// or a supervisor does. `go tool` passes it to cmd/task, which passes it
// to the group go-task runs in (go-task alone would only log it).
func stopFromTheTop(t *testing.T, dev *stacktest.Run, envPath string) {
	t.Helper()
	begin := time.Now()
	if err := syscall.Kill(dev.Pid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := dev.ExitCode(t, time.Minute); code != 0 {
		t.Errorf("go tool task dev exited %d after one SIGTERM, want 0", code)
	}
	dev.WaitGone(t, time.Minute)
	stacktest.WaitCond(t, 10*time.Second, "stack.env removed", func() bool {
		_, err := os.Stat(envPath)
		return errors.Is(err, os.ErrNotExist)
	})
	if b, _ := os.ReadFile(filepath.Join(filepath.Dir(envPath), "dev.lock")); len(b) != 0 {
		t.Errorf("dev.lock still names pid %q", b)
	}
	t.Logf("one SIGTERM to go (pid %d): all %d descendants gone and stack.env removed in %s",
		dev.Pid(), len(dev.Seen()), time.Since(begin).Round(time.Millisecond))
}

// useStack uses every value of stack.env as an outside tool would, and
// returns the workspace it created.
func useStack(t *testing.T, ctx context.Context, env map[string]string) string {
	t.Helper()
	kc, realm := env["KEYCLOAK_URL"], env["KEYCLOAK_REALM"]
	token := passwordGrant(t, kc, realm, "demo", "example-admin", "changeme")

	// A name of its own per run: with -count > 1 the checkout's state,
	// kept across restarts as it should be, still holds earlier runs'.
	name := createWorkspace(t, env["WORKSPACE_API"], token, fmt.Sprintf("tasks-dev-%d", time.Now().UnixNano()))
	var got struct{ Name, Status string }
	stacktest.WaitCond(t, 30*time.Second, "GET "+name+" answering 200", func() bool {
		code, body := getWorkspace(t, env["WORKSPACE_API"], name, token)
		return code == http.StatusOK && json.Unmarshal(body, &got) == nil
	})
	if got.Name != name || (got.Status != "provisioning" && got.Status != "ready") {
		t.Errorf("GET %s: name %q status %q", name, got.Name, got.Status)
	}

	gc := gocloak.NewClient(kc)
	admin, err := gc.LoginAdmin(ctx, env["KEYCLOAK_ADMIN_USER"], env["KEYCLOAK_ADMIN_PASSWORD"], "master")
	if err != nil {
		t.Fatalf("LoginAdmin on master as %s: %v", env["KEYCLOAK_ADMIN_USER"], err)
	}
	clients, err := gc.GetClients(ctx, admin.AccessToken, realm, gocloak.GetClientsParams{})
	if err != nil {
		t.Fatalf("clients of %s: %v", realm, err)
	}
	var ids []string
	for _, c := range clients {
		ids = append(ids, gocloak.PString(c.ClientID))
	}
	for _, want := range []string{"demo", "workspace-worker"} {
		if !slices.Contains(ids, want) {
			t.Errorf("realm %s clients %v lack %s", realm, ids, want)
		}
	}

	checkCommand(t, ctx, env["NATS_URL"], name)

	s3, err := minio.New(strings.TrimPrefix(env["S3_ENDPOINT"], "http://"), &minio.Options{
		Creds:  credentials.NewStaticV4(env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"], ""),
		Region: env["S3_REGION"],
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3.ListBuckets(ctx); err != nil {
		t.Errorf("S3 ListBuckets at %s with the root credentials: %v", env["S3_ENDPOINT"], err)
	}
	return name
}

// checkCommand finds the create command the API published in WORKSPACE_COMMANDS.
func checkCommand(t *testing.T, ctx context.Context, natsURL, name string) {
	t.Helper()
	nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("connect %s: %v", natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, "WORKSPACE_COMMANDS")
	if err != nil {
		t.Fatalf("stream WORKSPACE_COMMANDS: %v", err)
	}
	subject := "workspace.cmd." + name + ".create"
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("workspace.cmd."+name+".>"))
	if err != nil {
		t.Fatalf("stream info: %v", err)
	}
	if n := info.State.Subjects[subject]; n != 1 {
		t.Errorf("WORKSPACE_COMMANDS holds %d messages on %s (subjects %v), want 1", n, subject, info.State.Subjects)
	}
	msg, err := stream.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatalf("last message on %s: %v", subject, err)
	}
	var ce struct{ ID, Type, Subject, Actor string }
	if err := json.Unmarshal(msg.Data, &ce); err != nil {
		t.Fatalf("command on %s is not JSON: %v", subject, err)
	}
	if ce.Type != "workspace.create" || ce.Subject != name || ce.Actor == "" || msg.Header.Get("Nats-Msg-Id") != ce.ID {
		t.Errorf("command %+v (Nats-Msg-Id %q), want a workspace.create CloudEvent for %s with an actor", ce, msg.Header.Get("Nats-Msg-Id"), name)
	}
}

func passwordGrant(t *testing.T, kc, realm, client, user, password string) string {
	t.Helper()
	tok, err := stacktest.PasswordToken(t.Context(), kc, realm, client, user, password, "")
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func createWorkspace(t *testing.T, api, token, preferred string) string {
	t.Helper()
	body, _ := json.Marshal(map[string]string{"preferred_name": preferred, "default_owner": "example-user-1"})
	req, err := http.NewRequest(http.MethodPost, api, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", api, err)
	}
	defer resp.Body.Close()
	var got struct{ Name, Status string }
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("POST %s: status %d, decode err %v", api, resp.StatusCode, err)
	}
	if want := "ws-" + preferred; got.Name != want || got.Status != "provisioning" {
		t.Fatalf("POST %s answered %+v, want name %s status provisioning", api, got, want)
	}
	return got.Name
}

func getWorkspace(t *testing.T, api, name, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, api+"/"+name, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return resp.StatusCode, buf.Bytes()
}
