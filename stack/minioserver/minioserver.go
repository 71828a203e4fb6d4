// Package minioserver runs the repository's pinned MinIO server as a child
// process on a loopback port, for tests and for the local dev stack.
//
// Tests in one package share one server, started in TestMain:
//
//	var srv *minioserver.Server
//
//	func TestMain(m *testing.M) {
//		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
//		s, err := minioserver.Start(ctx, minioserver.Options{})
//		cancel()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		srv = s
//		code := m.Run()
//		if err := s.Stop(); err != nil {
//			fmt.Fprintln(os.Stderr, err)
//		}
//		os.Exit(code)
//	}
//
// Each test then isolates itself by the buckets and users it names (for
// example after t.Name()), not by a server of its own.
package minioserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"time"

	"github.com/eo-workspaces/provisioner/stack/child"
)

// Defaults for Options.
const (
	DefaultRootUser     = "minioadmin"
	DefaultRootPassword = "minioadmin"
	DefaultRegion       = "us-east-1"
	DefaultStartTimeout = 2 * time.Minute
	DefaultStopTimeout  = 10 * time.Second
)

// Options configure a MinIO child process. The zero value is usable.
type Options struct {
	// Binary is the MinIO server executable; empty means EnsureBinary's answer
	// ($MINIO_BINARY, or <repo root>/.bin/minio, built if missing).
	Binary string
	// DataDir holds the objects; empty means a temporary directory removed by Stop.
	DataDir string
	// Addr is the S3 API's host:port; empty means a free port on 127.0.0.1.
	Addr string
	// ConsoleAddr enables the web console on host:port; empty turns it off.
	ConsoleAddr string
	// RootUser and RootPassword are the root credentials (defaults minioadmin/minioadmin).
	RootUser, RootPassword string
	// Region is the site region the server answers for (default us-east-1).
	Region string
	// Logs receives the server's stdout and stderr; nil keeps them in memory,
	// for Server.Logs and for the error Start returns.
	Logs io.Writer
	// StartTimeout bounds the wait for readiness; StopTimeout the wait after
	// SIGTERM before SIGKILL.
	StartTimeout, StopTimeout time.Duration
}

func (o Options) withDefaults() Options {
	if o.RootUser == "" {
		o.RootUser = DefaultRootUser
	}
	if o.RootPassword == "" {
		o.RootPassword = DefaultRootPassword
	}
	if o.Region == "" {
		o.Region = DefaultRegion
	}
	if o.StartTimeout == 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.StopTimeout == 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	return o
}

// Validate reports the first option MinIO would refuse.
func (o Options) Validate() error {
	switch {
	case len(o.RootUser) < 3:
		return errors.New("minioserver: RootUser must have at least 3 characters")
	case len(o.RootPassword) < 8:
		return errors.New("minioserver: RootPassword must have at least 8 characters")
	case o.StartTimeout < 0 || o.StopTimeout < 0:
		return errors.New("minioserver: StartTimeout and StopTimeout must not be negative")
	}
	for name, a := range map[string]string{"Addr": o.Addr, "ConsoleAddr": o.ConsoleAddr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			return fmt.Errorf("minioserver: %s %q: %w", name, a, err)
		}
	}
	return nil
}

// Server is a running MinIO child process.
type Server struct {
	opts     Options
	proc     *child.Process
	tempDirs []string

	stopOnce sync.Once
	stopErr  error
}

// Start runs MinIO and returns once it serves S3 and admin requests: its
// /minio/health/ready answers 200 and /minio/health/cluster does too. The
// second check matters: this MinIO answers "ready" as soon as it listens,
// before its object layer and IAM are up, and the cluster check waits for both.
func Start(ctx context.Context, opts Options) (*Server, error) {
	opts = opts.withDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Binary == "" {
		bin, err := EnsureBinary(ctx)
		if err != nil {
			return nil, err
		}
		opts.Binary = bin
	}
	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	// A port picked free can be taken before MinIO binds it; pick again then.
	const attempts = 3
	var err error
	for i := 0; i < attempts; i++ {
		var s *Server
		s, err = startOnce(ctx, opts)
		if err == nil {
			return s, nil
		}
		if opts.Addr != "" || !errors.Is(err, errExitedEarly) || ctx.Err() != nil {
			break
		}
	}
	return nil, err
}

var errExitedEarly = errors.New("minio exited before it was ready")

func startOnce(ctx context.Context, opts Options) (*Server, error) {
	s := &Server{opts: opts}
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
		return nil, fmt.Errorf("start minio on %s: %w%s", s.opts.Addr, err, s.logTail())
	}
	return s, nil
}

// prepare fills in the addresses and directories left to us.
func (s *Server) prepare() error {
	if s.opts.Addr == "" {
		addr, err := FreeAddr()
		if err != nil {
			return err
		}
		s.opts.Addr = addr
	}
	if s.opts.DataDir == "" {
		d, err := os.MkdirTemp("", "minio-data-")
		if err != nil {
			return fmt.Errorf("minio data dir: %w", err)
		}
		s.tempDirs = append(s.tempDirs, d)
		s.opts.DataDir = d
	} else if err := os.MkdirAll(s.opts.DataDir, 0o755); err != nil {
		return fmt.Errorf("minio data dir: %w", err)
	}
	return nil
}

func (s *Server) command() (*exec.Cmd, error) {
	// An empty certs dir of our own keeps MinIO out of $HOME/.minio and on plain HTTP.
	certs, err := os.MkdirTemp("", "minio-certs-")
	if err != nil {
		return nil, fmt.Errorf("minio certs dir: %w", err)
	}
	s.tempDirs = append(s.tempDirs, certs)
	args := []string{"server", "--quiet", "--address", s.opts.Addr, "--certs-dir", certs}
	browser := "off"
	if s.opts.ConsoleAddr != "" {
		browser = "on"
		args = append(args, "--console-address", s.opts.ConsoleAddr)
	}
	args = append(args, s.opts.DataDir)
	cmd := exec.Command(s.opts.Binary, args...)
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.opts.RootUser,
		"MINIO_ROOT_PASSWORD="+s.opts.RootPassword,
		"MINIO_SITE_REGION="+s.opts.Region,
		"MINIO_BROWSER="+browser,
		// No update check against dl.min.io; --quiet skips it too.
		"MINIO_UPDATE=off",
		// CI/CD mode: a 256-entry buffer pool instead of 1024, no root-disk
		// refusal, immediate purge of deleted objects.
		"MINIO_CI_CD=1",
	)
	// Kill MinIO if we die, and give it its own process group so a
	// terminal's Ctrl-C reaches only us and we decide how it stops.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd, nil
}

func (s *Server) spawn() error {
	cmd, err := s.command()
	if err != nil {
		return err
	}
	s.proc, err = child.Start(cmd, child.Options{Name: "minio", Logs: s.opts.Logs})
	return err
}

func (s *Server) waitReady(ctx context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if ok(ctx, client, s.URL()+"/minio/health/ready") && ok(ctx, client, s.URL()+"/minio/health/cluster") {
			return nil
		}
		select {
		case <-s.proc.Done():
			return fmt.Errorf("%w: %v", errExitedEarly, s.proc.Err())
		case <-ctx.Done():
			return fmt.Errorf("wait for readiness: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

func ok(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Endpoint is the S3 API's host:port, as minio-go and madmin-go take it.
func (s *Server) Endpoint() string { return s.opts.Addr }

// URL is the S3 API's base URL.
func (s *Server) URL() string { return "http://" + s.opts.Addr }

// ConsoleURL is the web console's URL, or "" when it is off.
func (s *Server) ConsoleURL() string {
	if s.opts.ConsoleAddr == "" {
		return ""
	}
	return "http://" + s.opts.ConsoleAddr
}

// RootUser is the root access key.
func (s *Server) RootUser() string { return s.opts.RootUser }

// RootPassword is the root secret key.
func (s *Server) RootPassword() string { return s.opts.RootPassword }

// Region is the region the server answers for.
func (s *Server) Region() string { return s.opts.Region }

// DataDir is where the server keeps its objects.
func (s *Server) DataDir() string { return s.opts.DataDir }

// Pid is the MinIO process id.
func (s *Server) Pid() int { return s.proc.Pid() }

// Done is closed once the process has exited, for whatever reason.
func (s *Server) Done() <-chan struct{} { return s.proc.Done() }

// Err is the process's exit error; meaningful once Done is closed.
func (s *Server) Err() error { return s.proc.Err() }

// Logs returns what the server printed, when Options.Logs was nil.
func (s *Server) Logs() string { return s.proc.Logs() }

func (s *Server) logTail() string { return s.proc.LogTail() }

// Stop sends SIGTERM, waits up to StopTimeout for MinIO to exit, then
// SIGKILLs it; it removes the temporary directories Start made. Calling it
// again returns the first answer.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stopErr = s.stop()
		s.removeTemp()
	})
	return s.stopErr
}

func (s *Server) stop() error {
	return s.proc.Stop(s.opts.StopTimeout)
}

func (s *Server) removeTemp() {
	for _, d := range s.tempDirs {
		_ = os.RemoveAll(d)
	}
	s.tempDirs = nil
}

// FreeAddr returns a 127.0.0.1 host:port that was free a moment ago.
func FreeAddr() (string, error) { return child.FreeAddr() }
