// Package devstack tests cmd/devstack as a newcomer runs it: a real process
// tree with the real MinIO, the Keycloak emulator when it is built, and a
// stub provisioner kept in this test.
package devstack

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"

	"github.com/eo-workspaces/provisioner/integration/stacktest"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

func TestMain(m *testing.M) {
	if runStub() {
		return
	}
	os.Exit(m.Run())
}

// fixture is a scratch repository root with the binaries devstack runs.
type fixture struct {
	root, bin string
	realKC    bool
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	repo, err := minioserver.RepoRoot(wd)
	if err != nil {
		t.Fatal(err)
	}
	f := fixture{root: t.TempDir(), bin: t.TempDir()}
	if err := os.WriteFile(filepath.Join(f.root, "go.mod"), []byte("module devstackfixture\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	goBuild(t, ctx, repo, filepath.Join(f.bin, "devstack"), "./cmd/devstack")
	minioBin, err := minioserver.EnsureBinary(ctx)
	if err != nil {
		t.Fatal(err)
	}
	link(t, minioBin, filepath.Join(f.bin, "minio"))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if goFiles, _ := filepath.Glob(filepath.Join(repo, "cmd", "keycloak-emulator", "*.go")); len(goFiles) > 0 {
		goBuild(t, ctx, repo, filepath.Join(f.bin, "keycloak-emulator"), "./cmd/keycloak-emulator")
		f.realKC = true
	} else {
		t.Log("cmd/keycloak-emulator has no code yet: using this test's stub emulator")
		link(t, self, filepath.Join(f.bin, "keycloak-emulator"))
	}
	link(t, self, filepath.Join(f.bin, "provisioner"))
	return f
}

func goBuild(t *testing.T, ctx context.Context, dir, out, pkg string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
}

func link(t *testing.T, target, name string) {
	t.Helper()
	if err := os.Symlink(target, name); err != nil {
		t.Fatal(err)
	}
}

// run is one devstack process.
type run struct {
	cmd  *exec.Cmd
	out  *stacktest.SyncBuffer
	done chan struct{}
	err  error
}

func (f fixture) start(t *testing.T, args ...string) *run {
	t.Helper()
	// The emulator: these tests are about devstack's supervision, in seconds;
	// integration/tasks and integration/restart run it on the real Keycloak.
	cmd := exec.Command(filepath.Join(f.bin, "devstack"), append([]string{"--bin-dir", f.bin, "--keycloak", "emulator"}, args...)...)
	cmd.Dir = f.root
	cmd.Env = append(os.Environ(), envStubs+"=1")
	r := &run{cmd: cmd, out: &stacktest.SyncBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = r.out, r.out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.err = cmd.Wait(); close(r.done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.done
		if t.Failed() {
			t.Logf("devstack pid %d output:\n%s", cmd.Process.Pid, r.out.String())
		}
	})
	return r
}

// exitCode waits for the process to end within d.
func (r *run) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		t.Fatalf("devstack pid %d still running after %s", r.cmd.Process.Pid, d)
	}
	var exit *exec.ExitError
	if errors.As(r.err, &exit) {
		return exit.ExitCode()
	}
	if r.err != nil {
		t.Fatalf("wait devstack: %v", r.err)
	}
	return 0
}

// waitEnv polls for .dev/stack.env and returns its keys.
func (f fixture) waitEnv(t *testing.T, r *run) map[string]string {
	t.Helper()
	path := filepath.Join(f.root, ".dev", "stack.env")
	deadline := time.After(3 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if b, err := os.ReadFile(path); err == nil {
			return parseEnv(t, b)
		}
		select {
		case <-r.done:
			t.Fatalf("devstack exited (%v) before writing stack.env", r.err)
		case <-deadline:
			t.Fatal("no .dev/stack.env within 3 minutes")
		case <-tick.C:
		}
	}
}

func parseEnv(t *testing.T, b []byte) map[string]string {
	t.Helper()
	env, err := stacktest.ParseEnv(b)
	if err != nil {
		t.Fatalf("stack.env: %v", err)
	}
	return env
}

func TestDevStackLifecycle(t *testing.T) {
	f := newFixture(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// First run: every part answers, stack.env carries the contract's keys.
	begin := time.Now()
	first := f.start(t)
	env := f.waitEnv(t, first)
	t.Logf("stack ready in %s (real keycloak emulator: %v)", time.Since(begin).Round(time.Millisecond), f.realKC)
	keys := slices.Sorted(maps.Keys(env))
	want := slices.Sorted(slices.Values(stacktest.ContractKeys()))
	if !slices.Equal(keys, want) {
		t.Fatalf("stack.env keys %v, want exactly %v", keys, want)
	}
	checkEnvValues(t, env)
	useEveryPart(t, ctx, f, env)
	s3 := s3Client(t, env)
	if err := s3.MakeBucket(ctx, "kept-across-restarts", minio.MakeBucketOptions{Region: env["S3_REGION"]}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	checkWiring(t, f, env)
	children := waitChildren(t, first.cmd.Process.Pid, 3)

	// A second dev on the same root is refused at once and names the first.
	second := f.start(t)
	if code := second.exitCode(t, 30*time.Second); code == 0 {
		t.Fatal("second devstack exited 0, want a refusal")
	}
	if msg := second.out.String(); !strings.Contains(msg, "pid "+strconv.Itoa(first.cmd.Process.Pid)) {
		t.Errorf("refusal %q does not name pid %d", msg, first.cmd.Process.Pid)
	}
	if again := f.waitEnv(t, first); again["S3_ENDPOINT"] != env["S3_ENDPOINT"] {
		t.Error("the refused second run changed stack.env")
	}

	// SIGTERM: every child gone, stack.env removed, exit 0.
	if err := first.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := first.exitCode(t, time.Minute); code != 0 {
		t.Fatalf("devstack exit code %d after SIGTERM, want 0", code)
	}
	checkGone(t, f, children)

	// Restart on the same data: same ports, MinIO's data kept.
	restarted := f.start(t)
	env2 := f.waitEnv(t, restarted)
	for _, k := range []string{"WORKSPACE_API", "KEYCLOAK_URL", "NATS_URL", "S3_ENDPOINT"} {
		if env2[k] != env[k] {
			t.Errorf("after restart %s = %q, want the remembered %q", k, env2[k], env[k])
		}
	}
	if ok, err := s3Client(t, env2).BucketExists(ctx, "kept-across-restarts"); err != nil || !ok {
		t.Errorf("bucket after restart: exists=%v err=%v", ok, err)
	}

	// A part that dies on its own takes the stack down with a message naming it.
	children = waitChildren(t, restarted.cmd.Process.Pid, 3)
	minioPid := children["minio"]
	if err := syscall.Kill(minioPid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	if code := restarted.exitCode(t, time.Minute); code == 0 {
		t.Fatal("devstack exited 0 after MinIO died, want non-zero")
	}
	if msg := restarted.out.String(); !strings.Contains(msg, "minio (pid "+strconv.Itoa(minioPid)+") exited unexpectedly") {
		t.Errorf("output does not name the dead part:\n%s", stacktest.LastLines(msg, 5))
	}
	checkGone(t, f, children)

	// --fresh starts from nothing.
	fresh := f.start(t, "--fresh")
	env3 := f.waitEnv(t, fresh)
	if ok, err := s3Client(t, env3).BucketExists(ctx, "kept-across-restarts"); err != nil || ok {
		t.Errorf("bucket after --fresh: exists=%v err=%v, want gone", ok, err)
	}
	// A devstack killed outright takes its children with it (Pdeathsig); its
	// stack.env stays behind, and the next run replaces it and starts fine.
	children = waitChildren(t, fresh.cmd.Process.Pid, 3)
	if err := fresh.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	fresh.exitCode(t, time.Minute)
	waitPidsGone(t, children)
	if _, err := os.Stat(filepath.Join(f.root, ".dev", "stack.env")); err != nil {
		t.Fatalf("a killed devstack cannot remove stack.env, yet: %v", err)
	}
	last := f.start(t)
	waitOutput(t, last, "Local stack ready")
	env4 := parseEnv(t, mustRead(t, filepath.Join(f.root, ".dev", "stack.env")))
	if env4["S3_ENDPOINT"] != env3["S3_ENDPOINT"] {
		t.Errorf("after a killed run S3_ENDPOINT = %q, want the remembered %q", env4["S3_ENDPOINT"], env3["S3_ENDPOINT"])
	}
	children = waitChildren(t, last.cmd.Process.Pid, 3)
	if err := last.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	if code := last.exitCode(t, time.Minute); code != 0 {
		t.Fatalf("devstack exit code %d after SIGINT, want 0", code)
	}
	checkGone(t, f, children)
}

func waitOutput(t *testing.T, r *run, want string) {
	t.Helper()
	deadline := time.After(3 * time.Minute)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(r.out.String(), want) {
		select {
		case <-r.done:
			t.Fatalf("devstack exited (%v) before printing %q", r.err, want)
		case <-deadline:
			t.Fatalf("devstack did not print %q within 3 minutes", want)
		case <-tick.C:
		}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkEnvValues(t *testing.T, env map[string]string) {
	t.Helper()
	for _, k := range []string{"WORKSPACE_API", "KEYCLOAK_URL", "NATS_URL", "S3_ENDPOINT"} {
		u, err := url.Parse(env[k])
		if err != nil || u.Hostname() != "127.0.0.1" || u.Port() == "" {
			t.Errorf("%s = %q, want a 127.0.0.1 URL with a port", k, env[k])
		}
	}
	if !strings.HasSuffix(env["WORKSPACE_API"], "/workspaces") || strings.HasSuffix(env["KEYCLOAK_URL"], "/auth") {
		t.Errorf("WORKSPACE_API %q must end in /workspaces, KEYCLOAK_URL %q must have no /auth", env["WORKSPACE_API"], env["KEYCLOAK_URL"])
	}
	fixed := map[string]string{"KEYCLOAK_REALM": "eoepca", "KEYCLOAK_ADMIN_USER": "admin", "KEYCLOAK_ADMIN_PASSWORD": "admin",
		"S3_REGION": "us-east-1", "MINIO_ROOT_USER": "minioadmin", "MINIO_ROOT_PASSWORD": "minioadmin"}
	for k, v := range fixed {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
}

// useEveryPart uses each value the way an outside tool would.
func useEveryPart(t *testing.T, ctx context.Context, f fixture, env map[string]string) {
	t.Helper()
	kc := env["KEYCLOAK_URL"]
	if code := httpGet(t, kc+"/realms/master/.well-known/openid-configuration"); code != http.StatusOK {
		t.Errorf("keycloak discovery: %d", code)
	}
	if f.realKC {
		// The master admin, and the banner's first step: a dev user through the demo client.
		passwordGrant(t, kc, "master", "admin-cli", env["KEYCLOAK_ADMIN_USER"], env["KEYCLOAK_ADMIN_PASSWORD"])
		passwordGrant(t, kc, env["KEYCLOAK_REALM"], "demo", "example-admin", "changeme")
	}
	api := strings.TrimSuffix(env["WORKSPACE_API"], "/workspaces")
	if code := httpGet(t, api+"/readyz"); code != http.StatusOK {
		t.Errorf("api readyz: %d", code)
	}
	nc, err := nats.Connect(env["NATS_URL"], nats.Timeout(5*time.Second))
	if err != nil {
		t.Fatalf("nats: %v", err)
	}
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Errorf("nats flush: %v", err)
	}
	nc.Close()
	if _, err := s3Client(t, env).ListBuckets(ctx); err != nil {
		t.Errorf("s3 with root credentials: %v", err)
	}
}

// checkWiring reads the flags the stubs were given: devstack must point the
// provisioner at the very endpoints it advertises.
func checkWiring(t *testing.T, f fixture, env map[string]string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.root, ".dev", "data", "provisioner", "args.json"))
	if err != nil {
		t.Fatalf("provisioner stub args: %v", err)
	}
	var got map[string]string
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"http-addr":              strings.TrimSuffix(strings.TrimPrefix(env["WORKSPACE_API"], "http://"), "/workspaces"),
		"nats-listen":            strings.TrimPrefix(env["NATS_URL"], "nats://"),
		"data-dir":               filepath.Join(f.root, ".dev", "data", "provisioner"),
		"keycloak-url":           env["KEYCLOAK_URL"],
		"keycloak-realm":         "eoepca",
		"keycloak-client-id":     "workspace-worker",
		"keycloak-client-secret": "workspace-worker-secret",
		"s3-endpoint":            env["S3_ENDPOINT"],
		"s3-region":              env["S3_REGION"],
		"minio-access-key":       env["MINIO_ROOT_USER"],
		"minio-secret-key":       env["MINIO_ROOT_PASSWORD"],
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("provisioner --%s = %q, want %q", k, got[k], v)
		}
	}
	if got["secret-key"] == "" {
		t.Error("provisioner got no --secret-key")
	}
}

func passwordGrant(t *testing.T, kc, realm, client, user, password string) {
	t.Helper()
	if _, err := stacktest.PasswordToken(t.Context(), kc, realm, client, user, password, ""); err != nil {
		t.Error(err)
	}
}

func httpGet(t *testing.T, u string) int {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func s3Client(t *testing.T, env map[string]string) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(env["S3_ENDPOINT"], "http://"), &minio.Options{
		Creds:  credentials.NewStaticV4(env["MINIO_ROOT_USER"], env["MINIO_ROOT_PASSWORD"], ""),
		Region: env["S3_REGION"],
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitChildren polls /proc for devstack's children until n are there, and
// returns them by name.
func waitChildren(t *testing.T, ppid, n int) map[string]int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		kids := stacktest.ChildrenOf(ppid)
		if len(kids) >= n {
			names := map[string]int{}
			for pid, comm := range kids {
				names[partName(comm)] = pid
			}
			for _, want := range []string{"minio", "keycloak", "provisioner"} {
				if _, ok := names[want]; !ok {
					t.Fatalf("children of %d: %v, want minio, keycloak-emulator and provisioner", ppid, kids)
				}
			}
			return names
		}
		if time.Now().After(deadline) {
			t.Fatalf("children of %d: %v, want %d", ppid, kids, n)
		}
		<-time.After(20 * time.Millisecond) // poll interval; the deadline bounds the wait
	}
}

func partName(comm string) string {
	switch {
	case strings.HasPrefix(comm, "keycloak"):
		return "keycloak"
	default:
		return comm
	}
}

// checkGone asserts every child pid has ended and stack.env and the lock's
// pid are cleared.
func checkGone(t *testing.T, f fixture, children map[string]int) {
	t.Helper()
	waitPidsGone(t, children)
	if _, err := os.Stat(filepath.Join(f.root, ".dev", "stack.env")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stack.env still there after devstack exited (stat: %v)", err)
	}
	if b, _ := os.ReadFile(filepath.Join(f.root, ".dev", "dev.lock")); len(b) != 0 {
		t.Errorf("dev.lock still names pid %q", b)
	}
}

func waitPidsGone(t *testing.T, children map[string]int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for name, pid := range children {
		for stacktest.Alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("%s (pid %d) still running after devstack exited", name, pid)
			}
			<-time.After(20 * time.Millisecond) // poll interval; the deadline bounds the wait
		}
	}
}
