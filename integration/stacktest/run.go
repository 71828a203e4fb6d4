package stacktest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/stack/keycloakserver"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

// MakeCheckout copies the repository's source into a temporary directory,
// as a fresh clone has it, and links the real MinIO build into its .bin so
// `task tools:minio` finds it up to date instead of building it again; the
// unpacked Keycloak distribution too, when the repository has it, so the
// checkout's real Keycloak is not fetched again (it is never written to:
// each server runs in a home of its own). cleanup removes the directory.
func MakeCheckout(ctx context.Context, prefix string) (root string, cleanup func(), err error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", nil, err
	}
	repo, err := minioserver.RepoRoot(wd)
	if err != nil {
		return "", nil, err
	}
	minioBin, err := minioserver.EnsureBinary(ctx)
	if err != nil {
		return "", nil, fmt.Errorf("minio binary: %w", err)
	}
	root, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(root) }
	if err := CopySource(ctx, repo, root); err != nil {
		cleanup()
		return "", nil, err
	}
	if err := os.MkdirAll(filepath.Join(root, ".bin"), 0o755); err != nil {
		cleanup()
		return "", nil, err
	}
	if err := os.Symlink(minioBin, filepath.Join(root, ".bin", "minio")); err != nil {
		cleanup()
		return "", nil, err
	}
	if err := linkKeycloakDist(repo, root); err != nil {
		cleanup()
		return "", nil, err
	}
	return root, cleanup, nil
}

func linkKeycloakDist(repo, root string) error {
	name := "keycloak-" + keycloakserver.DefaultVersion
	dist, err := filepath.EvalSymlinks(filepath.Join(repo, ".bin", name))
	if err != nil {
		return nil // not fetched yet: the checkout fetches it itself
	}
	return os.Symlink(dist, filepath.Join(root, ".bin", name))
}

// Run is one `go tool task ...` process tree, started as a shell would
// start a job: in its own process group, led by the `go` process.
type Run struct {
	Name string
	Cmd  *exec.Cmd
	Out  *SyncBuffer
	done chan struct{}
	err  error
	// staleEnv is the stack.env found before the start, left by a killed
	// run: WaitStackEnv waits for another one.
	staleEnv os.FileInfo
	mu       sync.Mutex
	seen     map[int]Proc // every descendant recorded while running
}

// StartTask runs `go tool task args...` in dir with extra environment; the
// test's cleanup kills whatever of it is left.
func StartTask(t *testing.T, dir string, env []string, args ...string) *Run {
	t.Helper()
	cmd := exec.Command("go", append([]string{"tool", "task"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	// Pdeathsig: a test killed outright takes the go process with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r := &Run{Name: strings.Join(args, " "), Cmd: cmd, Out: &SyncBuffer{},
		done: make(chan struct{}), seen: map[int]Proc{}}
	cmd.Stdout, cmd.Stderr = r.Out, r.Out
	r.staleEnv, _ = os.Stat(StackEnvPath(dir))
	started := make(chan error, 1)
	go func() {
		// Pdeathsig follows the thread that started the child (golang/go#27505).
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		r.err = cmd.Wait()
		close(r.done)
	}()
	if err := <-started; err != nil {
		t.Fatalf("start go tool task %s: %v", r.Name, err)
	}
	t.Cleanup(func() { r.Kill(t) })
	return r
}

// Kill leaves nothing of the run behind, whatever the test did: the group,
// then every recorded descendant (devstack's children lead groups of their own).
func (r *Run) Kill(t *testing.T) {
	r.Record() // first: once go is gone its descendants are no longer below it
	_ = syscall.Kill(-r.Cmd.Process.Pid, syscall.SIGKILL)
	for _, p := range r.Seen() {
		if p.Alive() {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
	}
	<-r.done
	if t.Failed() {
		t.Logf("go tool task %s (pid %d) output:\n%s", r.Name, r.Cmd.Process.Pid, LastLines(r.Out.String(), 80))
	}
}

// PowerCut SIGKILLs the go process and every descendant at once, as a
// power cut would: nobody gets to clean up. It returns the processes
// killed, and waits until they are all gone.
func (r *Run) PowerCut(t *testing.T) []Proc {
	t.Helper()
	procs := append(Descendants(r.Pid()), Proc{Pid: r.Pid(), Comm: "go"})
	// Stopped first, so no parent reacts to a child's death before its own.
	for _, p := range procs {
		_ = syscall.Kill(p.Pid, syscall.SIGSTOP)
	}
	for _, p := range procs {
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
	}
	<-r.done
	deadline := time.Now().Add(30 * time.Second)
	for _, p := range procs {
		for p.Start != 0 && p.Alive() {
			if time.Now().After(deadline) {
				t.Fatalf("%s still running 30s after SIGKILL", p)
			}
			<-time.After(20 * time.Millisecond) // poll interval; the deadline bounds the wait
		}
	}
	return procs
}

// Pid is the go process's pid.
func (r *Run) Pid() int { return r.Cmd.Process.Pid }

// Done is closed once the go process has exited.
func (r *Run) Done() <-chan struct{} { return r.done }

// Record adds the run's current descendants to those seen.
func (r *Run) Record() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, p := range Descendants(r.Pid()) {
		if _, ok := r.seen[p.Pid]; !ok {
			r.seen[p.Pid] = p
		}
	}
}

// Seen lists every descendant recorded so far.
func (r *Run) Seen() []Proc {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Collect(maps.Values(r.seen))
}

// Find returns the recorded descendant whose name starts with comm.
func (r *Run) Find(t *testing.T, comm string) Proc {
	t.Helper()
	for _, p := range r.Seen() {
		if strings.HasPrefix(p.Comm, comm) {
			return p
		}
	}
	t.Fatalf("no %s among the descendants of go (pid %d): %v", comm, r.Pid(), r.Seen())
	return Proc{}
}

// ExitCode waits up to d for the go process to end.
func (r *Run) ExitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		t.Fatalf("go tool task %s (pid %d) still running after %s", r.Name, r.Pid(), d)
	}
	var exit *exec.ExitError
	if errors.As(r.err, &exit) {
		return exit.ExitCode()
	}
	if r.err != nil {
		t.Fatalf("wait go tool task %s: %v", r.Name, r.err)
	}
	return 0
}

// Poll calls cond every 50ms until it holds; it fails the test after d, or
// at once if the run ends first.
func (r *Run) Poll(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(d)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-r.done:
			if cond() {
				return
			}
			t.Fatalf("go tool task %s exited (%v) before %s:\n%s", r.Name, r.err, what, LastLines(r.Out.String(), 30))
		case <-deadline:
			t.Fatalf("no %s within %s", what, d)
		case <-tick.C:
		}
	}
}

// WaitGone waits until every recorded descendant has ended.
func (r *Run) WaitGone(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, p := range r.Seen() {
		for p.Alive() {
			if time.Now().After(deadline) {
				t.Fatalf("%s still running %s after go tool task %s ended", p, d, r.Name)
			}
			<-time.After(20 * time.Millisecond) // poll interval; the deadline bounds the wait
		}
	}
}

// WaitStackEnv waits for .dev/stack.env under root, written by r (not one
// a killed run left behind), and returns it once it holds exactly the
// contract's keys.
func (r *Run) WaitStackEnv(t *testing.T, root string, d time.Duration) map[string]string {
	t.Helper()
	path := StackEnvPath(root)
	r.Poll(t, d, ".dev/stack.env", func() bool {
		fi, err := os.Stat(path)
		// devstack writes it by rename: a new one is another file, written later.
		return err == nil && (r.staleEnv == nil || !os.SameFile(fi, r.staleEnv) || !fi.ModTime().Equal(r.staleEnv.ModTime()))
	})
	env := ReadEnv(t, path)
	keys := slices.Sorted(maps.Keys(env))
	if want := slices.Sorted(slices.Values(ContractKeys())); !slices.Equal(keys, want) {
		t.Fatalf("stack.env keys %v, want exactly %v", keys, want)
	}
	return env
}

// StackEnvPath is .dev/stack.env under a checkout.
func StackEnvPath(root string) string { return filepath.Join(root, ".dev", "stack.env") }

// ReadEnv reads a dotenv file devstack wrote.
func ReadEnv(t *testing.T, path string) map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	env, err := ParseEnv(b)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return env
}

// WaitCond polls cond until it holds or d passes.
func WaitCond(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
		<-time.After(50 * time.Millisecond) // poll interval; the deadline bounds the wait
	}
}

// HTTPStatus is the status of a GET of u, 0 when nothing answers.
func HTTPStatus(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// FreePort reserves a loopback port by listening and closing, for a
// server that must be told its port before it starts.
func FreePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
