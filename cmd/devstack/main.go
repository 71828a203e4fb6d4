// Command devstack runs the whole local stack (MinIO, Keycloak with the dev
// realm: the real server by default, the emulator with --keycloak emulator,
// and the provisioner with its embedded NATS) as child processes it owns; it
// is what `go tool task dev` runs.
//
// Once every part answers it writes .dev/stack.env at the repository root
// (the keys the README lists) and prints how to use the
// stack. SIGINT or SIGTERM stops every child, removes the file and exits 0;
// a child that dies on its own stops the rest and exits 1. State lives under
// .dev/data and survives restarts; --fresh wipes it first.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/eo-workspaces/provisioner/stack/keycloakserver"
	"github.com/eo-workspaces/provisioner/stack/minioserver"
)

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

// run is devstack's whole life; it returns the exit code.
func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	wd, err := os.Getwd()
	if err != nil {
		fmt.Fprintln(stderr, "devstack:", err)
		return 1
	}
	root, err := minioserver.RepoRoot(wd)
	if err != nil {
		fmt.Fprintln(stderr, "devstack: find the repository root:", err)
		return 1
	}
	cfg, err := parseConfig(args, getenv, root, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "devstack:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := stopWithParent(); err != nil {
		fmt.Fprintln(stderr, "devstack:", err)
		return 1
	}
	if err := serve(ctx, cfg, stdout); err != nil {
		fmt.Fprintln(stderr, "devstack:", err)
		return 1
	}
	return 0
}

// portGrace is how long a remembered port may stay taken before another is picked.
const portGrace = 5 * time.Second

// serve holds the lock, runs the stack until ctx ends or a part dies, and
// always leaves nothing running and no stack.env behind.
func serve(ctx context.Context, cfg Config, out io.Writer) (err error) {
	if err := checkBinaries(cfg.BinDir, cfg.keycloakBinary()); err != nil {
		return err
	}
	if err := checkJava(cfg); err != nil {
		return err
	}
	lock, err := acquireLock(cfg.lockPath())
	if err != nil {
		return err
	}
	defer lock.release()
	// A stack.env left by a killed run describes a stack that is gone.
	if err := os.Remove(cfg.stackEnvPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", cfg.stackEnvPath(), err)
	}
	if cfg.Fresh {
		if err := os.RemoveAll(cfg.dataDir()); err != nil {
			return fmt.Errorf("--fresh: %w", err)
		}
	}
	if err := checkData(cfg); err != nil {
		return err
	}
	ports, err := resolvePorts(cfg.Ports, cfg.portsPath(), portGrace)
	if err != nil {
		return err
	}
	s := &stack{cfg: cfg, ports: ports, logs: out}
	defer func() {
		_ = os.Remove(cfg.stackEnvPath())
		if stopErr := s.stop(); stopErr != nil {
			fmt.Fprintln(out, "devstack:", stopErr)
		}
	}()
	if err := s.start(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // interrupted while starting: a clean stop
		}
		return fmt.Errorf("start: %w", err)
	}
	if err := writeFileAtomic(cfg.stackEnvPath(), formatEnv(stackEnv(cfg, ports))); err != nil {
		return err
	}
	s.logMu.Lock() // not in the middle of a child's log lines
	printBanner(out, cfg, ports)
	s.logMu.Unlock()
	select {
	case <-ctx.Done():
		fmt.Fprintln(out, "devstack: stopping")
		return nil
	case p := <-s.died():
		return fmt.Errorf("%s (pid %d) exited unexpectedly (%v); stopped the rest", p.Name(), p.Pid(), p.Err())
	}
}

// checkBinaries fails early, naming every binary the stack needs but lacks.
func checkBinaries(dir, keycloak string) error {
	var missing []string
	for _, name := range []string{"minio", keycloak, "provisioner"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("missing in %s: %s (go tool task dev builds them; or point --bin-dir elsewhere)", dir, strings.Join(missing, ", "))
	}
	return nil
}

// checkJava fails early when the real Keycloak cannot run here, and names
// the way to a stack without it.
func checkJava(cfg Config) error {
	if cfg.Keycloak != keycloakReal {
		return nil
	}
	if _, err := keycloakserver.FindJava(); err != nil {
		return fmt.Errorf("%w\n(or run the emulator instead: go tool task dev -- --keycloak %s)", err, keycloakEmulator)
	}
	return nil
}

// stopWithParent asks the kernel to send us SIGTERM when our parent exits.
// `go tool task dev` puts go-task between a supervisor and us: go-task only
// logs a SIGINT or SIGTERM sent to it alone, never passes it on, and exits
// at the third (its InterceptInterruptSignals), which would leave the stack
// running orphaned. With this, that exit (or a SIGKILL of task) stops the
// stack cleanly like a signal of our own.
func stopWithParent() error {
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0); errno != 0 {
		return fmt.Errorf("prctl(PR_SET_PDEATHSIG): %w", errno)
	}
	return nil
}
