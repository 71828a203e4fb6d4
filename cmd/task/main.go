// Command task runs go-task (pinned in tools/gotask/go.mod) for this
// repository, so that `go tool task dev` works on a machine with nothing
// but Go, and so that a SIGTERM or SIGINT sent to it reaches the task's
// commands: go-task itself only logs such signals and leaves its
// children running until the third one (go-task issue #1408).
//
// The real go-task runs in a process group of its own; a SIGINT, SIGTERM
// or SIGHUP this process receives is sent to that whole group, as a
// terminal's Ctrl-C would be, and this process exits with its code.
// go-task exits at the third signal it sees, so one Ctrl-C, which reaches
// us both from the terminal and through `go tool`, is passed on once.
package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// goTaskModFile pins go-task, relative to the repository root.
const goTaskModFile = "tools/gotask/go.mod"

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "task:", err)
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	root, err := repoRoot()
	if err != nil {
		return 1, err
	}
	bin, err := goTaskBinary(root)
	if err != nil {
		return 1, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	// Its own group, so a signal can reach go-task's commands without
	// reaching whoever started us; SIGKILL if we die, and go-task's
	// commands then see their parent go (devstack stops on that).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	if err := cmd.Start(); err != nil {
		return 1, fmt.Errorf("start go-task: %w", err)
	}
	go forward(sigs, cmd.Process.Pid)
	err = cmd.Wait()
	signal.Stop(sigs)
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		if exit.ExitCode() >= 0 {
			return exit.ExitCode(), nil
		}
		return 1, nil // killed by a signal
	}
	if err != nil {
		return 1, fmt.Errorf("go-task: %w", err)
	}
	return 0, nil
}

// echoWindow is how close a second signal may follow the first and still
// be the same request: `go tool` passes on the signal the terminal also
// sent us directly.
const echoWindow = time.Second

// forward passes signals on to the process group pgid, dropping echoes.
func forward(sigs <-chan os.Signal, pgid int) {
	var last time.Time
	for sig := range sigs {
		if time.Since(last) < echoWindow {
			continue
		}
		last = time.Now()
		_ = syscall.Kill(-pgid, sig.(syscall.Signal))
	}
}

// goTaskBinary builds (or finds in the build cache) the pinned go-task
// and returns its path, so it runs without another `go` in between to
// pass signals on a second time.
func goTaskBinary(root string) (string, error) {
	find := exec.Command("go", "tool", "-n", "-modfile="+filepath.Join(root, goTaskModFile), "task")
	find.Stderr = os.Stderr // the first build downloads and compiles: let it show
	out, err := find.Output()
	if err != nil {
		return "", fmt.Errorf("build go-task from %s: %w", goTaskModFile, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// repoRoot is the nearest directory above the working directory that
// holds go.mod, as go tool itself finds the main module.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, goTaskModFile)); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no %s above the working directory: run from inside the repository", goTaskModFile)
		}
		dir = parent
	}
}
