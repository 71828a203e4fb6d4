package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// writeFileAtomic writes data to a temporary file beside path, syncs it and
// renames it over path, so a reader sees the old file or the new one, never half.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name()) // a no-op once renamed
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("install %s: %w", path, err)
	}
	return nil
}

// envLine is one key of stack.env.
type envLine struct{ Key, Value string }

// stackEnv lists the keys of .dev/stack.env, in the order the README gives them.
func stackEnv(cfg Config, p Ports) []envLine {
	host := func(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }
	return []envLine{
		{"WORKSPACE_API", "http://" + host(p.API) + "/workspaces"},
		{"KEYCLOAK_URL", "http://" + host(p.Keycloak)},
		{"KEYCLOAK_REALM", devRealm},
		{"KEYCLOAK_ADMIN_USER", cfg.KCAdminUser},
		{"KEYCLOAK_ADMIN_PASSWORD", cfg.KCAdminPass},
		{"NATS_URL", "nats://" + host(p.NATS)},
		{"S3_ENDPOINT", "http://" + host(p.MinIO)},
		{"S3_REGION", defaultS3Region},
		{"MINIO_ROOT_USER", cfg.MinIOUser},
		{"MINIO_ROOT_PASSWORD", cfg.MinIOPass},
	}
}

// formatEnv renders dotenv lines that both `. file` in a shell and dotenv
// parsers read back unchanged: plain values bare, others in single quotes
// (Config.Validate keeps quotes and newlines out).
func formatEnv(lines []envLine) []byte {
	var b strings.Builder
	b.WriteString("# Written by `go tool task dev` while the local stack runs; removed when it stops.\n")
	for _, l := range lines {
		v := l.Value
		if strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.:/@") != "" || v == "" {
			v = "'" + v + "'"
		}
		fmt.Fprintf(&b, "%s=%s\n", l.Key, v)
	}
	return []byte(b.String())
}

// devLock is the flock on .dev/dev.lock that makes one stack per repository.
type devLock struct{ f *os.File }

// errLocked says another devstack holds the lock.
var errLocked = errors.New("another dev stack is running")

// acquireLock takes the lock without waiting, and writes our pid into the
// file for the next one to name. The kernel drops the lock if we die.
func acquireLock(path string) (*devLock, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			pid, _ := os.ReadFile(path)
			return nil, fmt.Errorf("%w (pid %s, lock %s): stop it first (Ctrl-C in its terminal, or kill %s)",
				errLocked, strings.TrimSpace(string(pid)), path, strings.TrimSpace(string(pid)))
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return &devLock{f: f}, nil
}

// release empties the pid and drops the lock. The file stays: removing a
// flocked file lets two processes lock two different files.
func (l *devLock) release() {
	_ = l.f.Truncate(0)
	_ = l.f.Close()
}
