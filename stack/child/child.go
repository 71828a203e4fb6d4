package child

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options describe how a Process is run and stopped.
type Options struct {
	// Name names the server in errors and in LogTail ("minio", "keycloak").
	Name string
	// Logs receives the process's stdout and stderr; nil keeps them in
	// memory for Logs and LogTail.
	Logs io.Writer
	// KillGroup sends the final SIGKILL to the process group: for a shell
	// that runs the real server as its child. The command must then set
	// Setpgid.
	KillGroup bool
	// TailBytes bounds LogTail (default 4 KiB).
	TailBytes int
}

// Process is a running (or exited) child process.
type Process struct {
	opts    Options
	pid     int
	done    chan struct{} // closed when the process has exited
	waitErr error         // set before done closes
	logs    *syncBuffer   // nil when Options.Logs was given
}

// Start starts cmd, whose SysProcAttr (Pdeathsig, Setpgid) the caller
// chooses; its Stdout and Stderr are set here.
func Start(cmd *exec.Cmd, opts Options) (*Process, error) {
	if opts.TailBytes == 0 {
		opts.TailBytes = 4 << 10
	}
	p := &Process{opts: opts, done: make(chan struct{})}
	out := opts.Logs
	if out == nil {
		p.logs = &syncBuffer{}
		out = p.logs
	}
	cmd.Stdout, cmd.Stderr = out, out
	return p, p.spawn(cmd)
}

// spawn keeps the goroutine that started the child on its OS thread for
// the child's whole life: Pdeathsig fires when the parent *thread* exits,
// and Go may retire an idle thread, which would kill the child early
// (golang/go#27505).
func (p *Process) spawn(cmd *exec.Cmd) error {
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			p.waitErr = err
			close(p.done)
			started <- fmt.Errorf("run %s: %w", cmd.Path, err)
			return
		}
		p.pid = cmd.Process.Pid
		started <- nil
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return <-started
}

// Pid is the process id.
func (p *Process) Pid() int { return p.pid }

// Done is closed once the process has exited, for whatever reason.
func (p *Process) Done() <-chan struct{} { return p.done }

// Err is the process's exit error; nil while it runs.
func (p *Process) Err() error {
	select {
	case <-p.done:
		return p.waitErr
	default:
		return nil
	}
}

// Logs returns what the process printed, when Options.Logs was nil.
func (p *Process) Logs() string {
	if p.logs == nil {
		return ""
	}
	return p.logs.String()
}

// LogTail is the end of Logs, introduced for appending to an error; ""
// when there is nothing to show.
func (p *Process) LogTail() string {
	l := p.Logs()
	if l == "" {
		return ""
	}
	if len(l) > p.opts.TailBytes {
		l = "..." + l[len(l)-p.opts.TailBytes:]
	}
	return "\n" + p.opts.Name + " output:\n" + strings.TrimRight(l, "\n")
}

// Stop sends SIGTERM and waits up to grace for the process to exit, then
// SIGKILLs it (its group with KillGroup). A process that had to be killed
// is reported as an error.
func (p *Process) Stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil // already gone; Err says how
	default:
	}
	if err := syscall.Kill(p.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", p.opts.Name, p.pid, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	target := p.pid
	if p.opts.KillGroup {
		target = -p.pid
	}
	if err := syscall.Kill(target, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", p.opts.Name, p.pid, err)
	}
	<-p.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %s and was killed", p.opts.Name, p.pid, grace)
}

// FreeAddr returns a 127.0.0.1 host:port that was free a moment ago.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// syncBuffer is a bytes.Buffer safe for the two writers exec gives it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
