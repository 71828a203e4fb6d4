package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// part is one running piece of the stack, as the supervisor sees it.
type part interface {
	Name() string
	Pid() int
	Done() <-chan struct{}
	Err() error
	Stop() error
}

// child is a process devstack started and owns.
type child struct {
	name        string
	pid         int
	done        chan struct{}
	err         error
	stopTimeout time.Duration
	stopOnce    sync.Once
	stopErr     error
}

// startChild runs bin in dir with its output prefixed by name. It dies with
// us (Pdeathsig) and sits in its own process group, so a terminal's Ctrl-C
// reaches only devstack, which then stops the children in order.
func startChild(name, bin, dir string, args, env []string, logs io.Writer, stopTimeout time.Duration) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	c := &child{name: name, done: make(chan struct{}), stopTimeout: stopTimeout}
	started := make(chan error, 1)
	// Pdeathsig fires when the parent *thread* exits; keep this goroutine
	// on its thread for the child's whole life (golang/go#27505).
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := cmd.Start(); err != nil {
			started <- fmt.Errorf("start %s: %w", name, err)
			return
		}
		c.pid = cmd.Process.Pid
		started <- nil
		c.err = cmd.Wait()
		close(c.done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return c, nil
}

func (c *child) Name() string          { return c.name }
func (c *child) Pid() int              { return c.pid }
func (c *child) Done() <-chan struct{} { return c.done }

func (c *child) Err() error {
	select {
	case <-c.done:
		return c.err
	default:
		return nil
	}
}

// Stop sends SIGTERM, then SIGKILL after the stop timeout.
func (c *child) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *child) stop() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	if err := syscall.Kill(c.pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", c.name, c.pid, err)
	}
	t := time.NewTimer(c.stopTimeout)
	defer t.Stop()
	select {
	case <-c.done:
		return nil
	case <-t.C:
	}
	_ = syscall.Kill(c.pid, syscall.SIGKILL)
	<-c.done
	return fmt.Errorf("%s (pid %d) ignored SIGTERM for %s and was killed", c.name, c.pid, c.stopTimeout)
}

// prefixWriter writes whole lines to out, each led by a component's name.
// Writers for different components share mu so their lines never interleave.
type prefixWriter struct {
	mu     *sync.Mutex
	out    io.Writer
	prefix []byte
	buf    []byte // an incomplete last line
}

func newPrefixWriter(mu *sync.Mutex, out io.Writer, name string) *prefixWriter {
	return &prefixWriter{mu: mu, out: out, prefix: []byte(fmt.Sprintf("%-12s| ", name))}
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		line := append(append([]byte{}, w.prefix...), w.buf[:i+1]...)
		if _, err := w.out.Write(line); err != nil {
			return len(p), nil // losing a log line must not stall the child
		}
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

// Flush writes what is left of an unterminated last line.
func (w *prefixWriter) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		_, _ = w.out.Write(append(append(append([]byte{}, w.prefix...), w.buf...), '\n'))
		w.buf = nil
	}
}
