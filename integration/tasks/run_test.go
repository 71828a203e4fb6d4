package tasks

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eo-workspaces/provisioner/integration/minioserver"
	"github.com/eo-workspaces/provisioner/integration/stacktest"
)

// checkoutRoot is the scratch checkout TestMain makes; the tests run in it
// one after the other, so the binaries `task build` makes there are built once.
var checkoutRoot string

func TestMain(m *testing.M) {
	root, cleanup, err := makeCheckout()
	if err != nil {
		fmt.Fprintln(os.Stderr, "tasks:", err)
		os.Exit(1)
	}
	checkoutRoot = root
	code := m.Run()
	cleanup()
	os.Exit(code)
}

// makeCheckout copies the repository's source into a temporary directory, as
// a fresh clone has it, and links the real MinIO build into its .bin so
// `task tools:minio` finds it up to date instead of building it again.
func makeCheckout() (string, func(), error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
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
	root, err := os.MkdirTemp("", "tasks-checkout-")
	if err != nil {
		return "", nil, err
	}
	cleanup := func() { _ = os.RemoveAll(root) }
	if err := stacktest.CopySource(ctx, repo, root); err != nil {
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
	return root, cleanup, nil
}

// taskRun is one `go tool task ...` process tree, started as a shell would
// start a job: in its own process group, led by the `go` process.
type taskRun struct {
	name string
	cmd  *exec.Cmd
	out  *stacktest.SyncBuffer
	done chan struct{}
	err  error
	seen map[int]stacktest.Proc // every descendant recorded while running
}

// startTask runs `go tool task args...` in dir with extra environment.
func startTask(t *testing.T, dir string, env []string, args ...string) *taskRun {
	t.Helper()
	cmd := exec.Command("go", append([]string{"tool", "task"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	// Pdeathsig: a test killed outright takes the go process with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	r := &taskRun{name: strings.Join(args, " "), cmd: cmd, out: &stacktest.SyncBuffer{},
		done: make(chan struct{}), seen: map[int]stacktest.Proc{}}
	cmd.Stdout, cmd.Stderr = r.out, r.out
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
		t.Fatalf("start go tool task %s: %v", r.name, err)
	}
	t.Cleanup(func() { r.kill(t) })
	return r
}

// kill leaves nothing of the run behind, whatever the test did: the group,
// then every recorded descendant (devstack's children lead groups of their own).
func (r *taskRun) kill(t *testing.T) {
	_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
	r.record()
	for _, p := range r.seen {
		if p.Alive() {
			_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		}
	}
	<-r.done
	if t.Failed() {
		t.Logf("go tool task %s (pid %d) output:\n%s", r.name, r.cmd.Process.Pid, stacktest.LastLines(r.out.String(), 80))
	}
}

func (r *taskRun) pid() int { return r.cmd.Process.Pid }

// record adds the run's current descendants to those seen.
func (r *taskRun) record() {
	for _, p := range stacktest.Descendants(r.pid()) {
		if _, ok := r.seen[p.Pid]; !ok {
			r.seen[p.Pid] = p
		}
	}
}

// find returns the recorded descendant whose name starts with comm.
func (r *taskRun) find(t *testing.T, comm string) stacktest.Proc {
	t.Helper()
	for _, p := range r.seen {
		if strings.HasPrefix(p.Comm, comm) {
			return p
		}
	}
	t.Fatalf("no %s among the descendants of go (pid %d): %v", comm, r.pid(), r.seen)
	return stacktest.Proc{}
}

// exitCode waits up to d for the go process to end.
func (r *taskRun) exitCode(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(d):
		t.Fatalf("go tool task %s (pid %d) still running after %s", r.name, r.pid(), d)
	}
	var exit *exec.ExitError
	if errors.As(r.err, &exit) {
		return exit.ExitCode()
	}
	if r.err != nil {
		t.Fatalf("wait go tool task %s: %v", r.name, r.err)
	}
	return 0
}

// poll calls cond every 50ms until it holds; it fails the test after d, or
// at once if the run ends first.
func (r *taskRun) poll(t *testing.T, d time.Duration, what string, cond func() bool) {
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
			t.Fatalf("go tool task %s exited (%v) before %s", r.name, r.err, what)
		case <-deadline:
			t.Fatalf("no %s within %s", what, d)
		case <-tick.C:
		}
	}
}

// waitGone waits until every recorded descendant has ended.
func (r *taskRun) waitGone(t *testing.T, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for _, p := range r.seen {
		for p.Alive() {
			if time.Now().After(deadline) {
				t.Fatalf("%s still running %s after go tool task %s ended", p, d, r.name)
			}
			<-time.After(20 * time.Millisecond) // poll interval; the deadline bounds the wait
		}
	}
}

// waitCond polls cond until it holds or d passes.
func waitCond(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, d)
		}
		<-time.After(50 * time.Millisecond) // poll interval; the deadline bounds the wait
	}
}

func httpStatus(u string) int {
	resp, err := http.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
