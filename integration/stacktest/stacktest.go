// Package stacktest holds what tests of the local stack share: the keys of
// .dev/stack.env, a dotenv reader, a copy of the repository's source tree,
// and a view of process trees through /proc, so a test can prove that every
// process a run started is gone.
package stacktest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// ContractKeys are the keys the README ("Quick start") fixes for .dev/stack.env.
func ContractKeys() []string {
	return []string{
		"WORKSPACE_API", "KEYCLOAK_URL", "KEYCLOAK_REALM", "KEYCLOAK_ADMIN_USER", "KEYCLOAK_ADMIN_PASSWORD",
		"NATS_URL", "S3_ENDPOINT", "S3_REGION", "MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD",
	}
}

// ParseEnv reads dotenv lines (KEY=value, values optionally single-quoted;
// blank lines and # comments skipped), as devstack writes them.
func ParseEnv(b []byte) (map[string]string, error) {
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %q is not KEY=value", line)
		}
		env[k] = strings.Trim(v, "'")
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read env: %w", err)
	}
	return env, nil
}

// CopySource copies the files `git ls-files -co --exclude-standard` lists
// in repo (tracked and untracked, minus what .gitignore drops: no .bin, no
// .dev) into dst, keeping modes, so dst is a checkout as a newcomer has it.
func CopySource(ctx context.Context, repo, dst string) error {
	cmd := exec.CommandContext(ctx, "git", "ls-files", "-co", "--exclude-standard", "-z")
	cmd.Dir = repo
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files in %s: %w", repo, err)
	}
	for _, rel := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		if rel == "" {
			continue
		}
		if err := copyFile(filepath.Join(repo, rel), filepath.Join(dst, rel)); err != nil {
			// A file listed but deleted since (others edit the tree) is no part of it.
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return err
		}
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	if fi.IsDir() { // a submodule or nested repository: not source here
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(dst), err)
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return fmt.Errorf("create %s: %w", dst, err)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("write %s: %w", dst, err)
	}
	return nil
}

// Proc is one process, told apart from a later one reusing its pid by its
// start time.
type Proc struct {
	Pid   int
	PPid  int
	Comm  string
	Start uint64 // clock ticks after boot
}

func (p Proc) String() string { return fmt.Sprintf("%s (pid %d)", p.Comm, p.Pid) }

// readProc reads /proc/<pid>/stat; ok is false when the process is gone or
// a zombie (ended, not yet reaped).
func readProc(pid int) (p Proc, ok bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return Proc{}, false
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return Proc{}, false
	}
	// After the name: state, ppid, pgrp, ... starttime is the 20th.
	f := strings.Fields(s[end+1:])
	if len(f) < 20 || f[0] == "Z" || f[0] == "X" {
		return Proc{}, false
	}
	ppid, err1 := strconv.Atoi(f[1])
	start, err2 := strconv.ParseUint(f[19], 10, 64)
	if err1 != nil || err2 != nil {
		return Proc{}, false
	}
	return Proc{Pid: pid, PPid: ppid, Comm: s[open+1 : end], Start: start}, true
}

// Alive reports whether p is still running: same pid, same start time, not a zombie.
func (p Proc) Alive() bool {
	now, ok := readProc(p.Pid)
	return ok && now.Start == p.Start
}

// Alive reports whether a process with this pid runs and is not a zombie.
func Alive(pid int) bool {
	_, ok := readProc(pid)
	return ok && !errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// allProcs lists every live process.
func allProcs() []Proc {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	procs := make([]Proc, 0, len(dirs))
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if p, ok := readProc(pid); ok {
			procs = append(procs, p)
		}
	}
	return procs
}

// ChildrenOf lists live processes whose parent is ppid, by pid, with their names.
func ChildrenOf(ppid int) map[int]string {
	kids := map[int]string{}
	for _, p := range allProcs() {
		if p.PPid == ppid {
			kids[p.Pid] = p.Comm
		}
	}
	return kids
}

// Descendants lists every live process below root (not root itself),
// following parent links whatever their process groups.
func Descendants(root int) []Proc {
	byParent := map[int][]Proc{}
	for _, p := range allProcs() {
		byParent[p.PPid] = append(byParent[p.PPid], p)
	}
	var out []Proc
	queue := []int{root}
	for len(queue) > 0 {
		pid := queue[0]
		queue = queue[1:]
		for _, kid := range byParent[pid] {
			out = append(out, kid)
			queue = append(queue, kid.Pid)
		}
	}
	return out
}

// SyncBuffer is a bytes.Buffer safe for a child's output and a test reading it.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// LastLines is the last n lines of s, for failure messages.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
