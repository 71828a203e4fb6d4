package main

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/eo-workspaces/provisioner/stack/child"
)

// part is one running piece of the stack, as the supervisor sees it.
type part interface {
	Name() string
	Pid() int
	Done() <-chan struct{}
	Err() error
	Stop() error
}

// proc is a process devstack started and owns.
type proc struct {
	name        string
	p           *child.Process
	stopTimeout time.Duration
	stopOnce    sync.Once
	stopErr     error
}

// startChild runs bin in dir with its output prefixed by name. It dies with
// us (Pdeathsig) and sits in its own process group, so a terminal's Ctrl-C
// reaches only devstack, which then stops the children in order.
func startChild(name, bin, dir string, args, env []string, logs io.Writer, stopTimeout time.Duration) (*proc, error) {
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	p, err := child.Start(cmd, child.Options{Name: name, Logs: logs})
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &proc{name: name, p: p, stopTimeout: stopTimeout}, nil
}

func (c *proc) Name() string          { return c.name }
func (c *proc) Pid() int              { return c.p.Pid() }
func (c *proc) Done() <-chan struct{} { return c.p.Done() }
func (c *proc) Err() error            { return c.p.Err() }

// Stop sends SIGTERM, then SIGKILL after the stop timeout.
func (c *proc) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.p.Stop(c.stopTimeout) })
	return c.stopErr
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
