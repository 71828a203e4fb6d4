// Package keycloakserver runs a real Keycloak server, the pinned
// keycloak-quarkus-dist fetched with Maven, as a child process in dev mode
// on loopback ports, for the local dev stack and for tests.
//
// Its state (the dev-file H2 database: realms, clients, users, keys) lives in
// Options.DataDir and survives a restart. A start takes tens of seconds
// (start-dev re-augments the server every time, then boots Quarkus), so
// tests share one server per `go test` run (see FromEnv) rather than start
// one per test.
package keycloakserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/eo-workspaces/provisioner/stack/child"
)

// Defaults for Options.
const (
	DefaultAdminUser     = "admin"
	DefaultAdminPassword = "admin"
	// DefaultStartTimeout covers a first start on a busy two-core machine
	// (2.5 minutes measured with two builds competing for the CPU).
	DefaultStartTimeout = 5 * time.Minute
	DefaultStopTimeout  = 20 * time.Second
)

// Options configure a Keycloak child process. The zero value is usable.
type Options struct {
	// Dist is an unpacked keycloak-quarkus-dist, never written to; empty
	// means EnsureDist's answer for Version.
	Dist string
	// Version is the Keycloak release to fetch when Dist is empty (default DefaultVersion).
	Version string
	// DataDir is this server's home: its database under data/h2 and what
	// it imports under data/import. Empty means a temporary directory
	// removed by Stop.
	DataDir string
	// Addr is the HTTP listener's host:port; empty means a free port on
	// 127.0.0.1. ManagementPort serves /health on the same host; 0 means a
	// free one (Keycloak's default, 9000, would collide between instances).
	Addr           string
	ManagementPort int
	// AdminUser and AdminPassword bootstrap the master realm's admin the
	// first time the database is created (KC_BOOTSTRAP_ADMIN_*).
	AdminUser, AdminPassword string
	// ImportRealms are realm-export JSON files imported at start; a realm
	// that already exists is left as it is (Keycloak's --import-realm).
	ImportRealms []string
	// Logs receives the server's output; nil keeps it in memory for
	// Server.Logs and the error Start returns.
	Logs io.Writer
	// StartTimeout bounds the wait for readiness; StopTimeout the wait after
	// SIGTERM before SIGKILL.
	StartTimeout, StopTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.AdminUser == "" {
		o.AdminUser = DefaultAdminUser
	}
	if o.AdminPassword == "" {
		o.AdminPassword = DefaultAdminPassword
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	return o
}

// Validate reports the first option Keycloak would refuse.
func (o Options) Validate() error {
	if o.Addr != "" {
		if _, _, err := net.SplitHostPort(o.Addr); err != nil {
			return fmt.Errorf("keycloakserver: Addr %q: %w", o.Addr, err)
		}
	}
	switch {
	case o.ManagementPort < 0 || o.ManagementPort > 65535:
		return fmt.Errorf("keycloakserver: ManagementPort %d is not a port", o.ManagementPort)
	case o.StartTimeout < 0 || o.StopTimeout < 0:
		return errors.New("keycloakserver: StartTimeout and StopTimeout must not be negative")
	}
	for _, f := range o.ImportRealms {
		if _, err := realmName(f); err != nil {
			return fmt.Errorf("keycloakserver: ImportRealms: %w", err)
		}
	}
	return nil
}

// Server is a running Keycloak.
type Server struct {
	opts    Options
	java    string
	realms  []string // names of the imported realms, awaited at start
	proc    *child.Process
	tempDir string

	stopOnce sync.Once
	stopErr  error
}

// Start runs Keycloak with start-dev and returns once it serves: the master
// realm's OpenID discovery document, every imported realm's, and the
// management interface's /health/ready all answer 200.
func Start(ctx context.Context, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	java, err := FindJava()
	if err != nil {
		return nil, err
	}
	if opts.Dist == "" {
		if opts.Dist, err = EnsureDist(ctx, opts.Version); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	s := &Server{opts: opts, java: java}
	if err := s.prepare(); err != nil {
		s.removeTemp()
		return nil, err
	}
	if err := s.spawn(); err != nil {
		s.removeTemp()
		return nil, err
	}
	if err := s.waitReady(ctx); err != nil {
		_ = s.Stop()
		return nil, fmt.Errorf("start keycloak on %s: %w%s", s.opts.Addr, err, s.logTail())
	}
	return s, nil
}

// prepare fills in the ports and directories left to us and lays out the home.
func (s *Server) prepare() error {
	if s.opts.Addr == "" {
		addr, err := child.FreeAddr()
		if err != nil {
			return err
		}
		s.opts.Addr = addr
	}
	if s.opts.ManagementPort == 0 {
		port, err := freePort()
		if err != nil {
			return err
		}
		s.opts.ManagementPort = port
	}
	if s.opts.DataDir == "" {
		d, err := os.MkdirTemp("", "keycloak-home-")
		if err != nil {
			return fmt.Errorf("keycloak home: %w", err)
		}
		s.tempDir, s.opts.DataDir = d, d
	}
	if err := prepareHome(s.opts.Dist, s.opts.DataDir); err != nil {
		return err
	}
	return s.stageImports()
}

// stageImports puts the realm files where --import-realm reads them,
// replacing what an earlier start staged there.
func (s *Server) stageImports() error {
	dir := filepath.Join(s.opts.DataDir, "data", "import")
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("keycloak import dir: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("keycloak import dir: %w", err)
	}
	for i, f := range s.opts.ImportRealms {
		name, err := realmName(f)
		if err != nil {
			return err
		}
		// Numbered: two files may share a base name.
		if err := copyFile(f, filepath.Join(dir, fmt.Sprintf("%02d-%s.json", i, name))); err != nil {
			return err
		}
		s.realms = append(s.realms, name)
	}
	return nil
}

func (s *Server) command() *exec.Cmd {
	host, port, _ := net.SplitHostPort(s.opts.Addr)
	args := []string{"start-dev",
		"--http-host", host, "--http-port", port,
		"--http-management-port", strconv.Itoa(s.opts.ManagementPort),
		"--health-enabled=true",
		"--db", "dev-file",
	}
	if len(s.realms) > 0 {
		args = append(args, "--import-realm")
	}
	cmd := exec.Command(filepath.Join(s.opts.DataDir, "bin", "kc.sh"), args...)
	cmd.Dir = s.opts.DataDir
	cmd.Env = append(os.Environ(),
		"JAVA="+s.java,
		// The client compiler only: start-dev re-augments the server at every
		// start, a burst of short-lived work the optimising compiler only
		// slows down on a small machine (2 busy cores: ready in 80 s instead
		// of 207 s). Enough for a dev server; production runs differ anyway.
		"JAVA_OPTS_APPEND="+strings.TrimSpace(os.Getenv("JAVA_OPTS_APPEND")+" -XX:TieredStopAtLevel=1"),
		"KC_BOOTSTRAP_ADMIN_USERNAME="+s.opts.AdminUser,
		"KC_BOOTSTRAP_ADMIN_PASSWORD="+s.opts.AdminPassword,
	)
	// kc.sh runs java in the background and passes SIGTERM on to it, or
	// execs java itself after re-augmenting: SIGTERM at our death reaches
	// java either way, where SIGKILL would kill only the shell. A process
	// group of its own keeps a terminal's Ctrl-C for us to decide.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
	return cmd
}

// spawn starts kc.sh; the final SIGKILL goes to its process group, where
// java may run as kc.sh's child.
func (s *Server) spawn() error {
	var err error
	s.proc, err = child.Start(s.command(), child.Options{Name: "keycloak", Logs: s.opts.Logs, KillGroup: true, TailBytes: 8 << 10})
	return err
}

func freePort() (int, error) {
	addr, err := child.FreeAddr()
	if err != nil {
		return 0, err
	}
	_, p, _ := net.SplitHostPort(addr)
	return strconv.Atoi(p)
}
