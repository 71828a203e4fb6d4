package child

import (
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func start(t *testing.T, script string, opts Options) *Process {
	t.Helper()
	cmd := exec.Command("sh", "-c", script)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	p, err := Start(cmd, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Stop(time.Second) })
	return p
}

func TestOutputIsKeptAndItsTailBounded(t *testing.T) {
	p := start(t, "printf 'first line\\n'; printf '%0500d\\n' 0; printf 'last line\\n'", Options{Name: "demo", TailBytes: 100})
	<-p.Done()
	if err := p.Err(); err != nil {
		t.Fatalf("exit: %v", err)
	}
	if !strings.Contains(p.Logs(), "first line") || !strings.Contains(p.Logs(), "last line") {
		t.Fatalf("logs lost output: %q", p.Logs())
	}
	tail := p.LogTail()
	if !strings.HasPrefix(tail, "\ndemo output:\n...") || !strings.HasSuffix(tail, "last line") || strings.Contains(tail, "first line") {
		t.Fatalf("tail = %q", tail)
	}
}

func TestStopEndsAProcessThatHonoursSIGTERM(t *testing.T) {
	p := start(t, "exec sleep 30", Options{Name: "sleeper"})
	if err := p.Stop(5 * time.Second); err != nil {
		t.Fatalf("stop: %v", err)
	}
	select {
	case <-p.Done():
	default:
		t.Fatal("Stop returned before the process exited")
	}
	if p.Err() == nil {
		t.Fatal("a process ended by SIGTERM reports no exit error")
	}
}

func TestStopKillsTheGroupOfAProcessIgnoringSIGTERM(t *testing.T) {
	// The shell ignores SIGTERM and waits on a child: only a SIGKILL of the
	// whole group ends both.
	p := start(t, "trap '' TERM; sleep 30 & echo started; wait", Options{Name: "stubborn", KillGroup: true})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Logs(), "started") {
		if time.Now().After(deadline) {
			t.Fatal("the script never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	err := p.Stop(200 * time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "stubborn") || !strings.Contains(err.Error(), "was killed") {
		t.Fatalf("stop = %v, want it to say the process was killed", err)
	}
	// The orphaned sleep is reaped by init, a moment after it dies.
	deadline = time.Now().Add(10 * time.Second)
	for syscall.Kill(-p.Pid(), 0) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the process group outlived the SIGKILL")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStartReportsACommandThatCannotRun(t *testing.T) {
	p, err := Start(exec.Command("/nonexistent/server"), Options{Name: "ghost"})
	if err == nil {
		t.Fatal("Start of a missing binary succeeded")
	}
	<-p.Done()
	if p.Err() == nil {
		t.Fatal("Err is nil for a process that never ran")
	}
}

func TestFreeAddrIsALoopbackPort(t *testing.T) {
	addr, err := FreeAddr()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(addr, "127.0.0.1:") || addr == "127.0.0.1:0" {
		t.Fatalf("addr = %q", addr)
	}
}
